-- Count one audit on the entry it judged, right or wrong (the entry's own evidence), or one
-- exact repeat of an entry that holds a withheld verdict. An entry that is gone is left
-- gone (a late count must not recreate its hash).
-- KEYS[1] the entry's hash   ARGV[1] 'au_right', 'au_wrong' or 'wh_n'
-- Returns the new count, 0 when the entry is gone.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
return redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
