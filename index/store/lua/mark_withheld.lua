-- Keep on an entry made by a MISS whose candidate the wrong-rate bound withheld what that
-- candidate would have been: its evidence group and verdict, so that each exact repeat of
-- the entry counts that verdict again (the bound's evidence weighted as served HITs are).
-- An entry that is gone is left gone.
-- KEYS[1] the entry's hash   ARGV[1] '<group>|1' (right) or '<group>|0' (wrong)
-- Returns 1 when kept, 0 when the entry is gone.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'wh', ARGV[1])
return 1
