"""Numbers in questions: what counts as one, and the rule every decision stage keeps above
its model: a candidate whose numbers differ from the query's is never served ("200 mg" /
"800 mg", "in 2019" / "in 2021", "a thousand dollars" / "a million dollars"), however
close the two texts look."""

import re

NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
# the words of scale, which a question writes out ("a million dollars"); not "one", which
# is a pronoun as often ("how can one learn ..."), nor small numbers, which questions also
# write as digits ("top ten" / "top 10")
SCALE_WORD = re.compile(r"\b(hundred|thousand|million|billion|trillion|lakh|crore)s?\b", re.I)


def numbers_in(text: str) -> frozenset[str]:
    scales = (word.lower() for word in SCALE_WORD.findall(text))
    return frozenset(NUMBER.findall(text)) | frozenset(scales)


def differing_numbers(a: str, b: str) -> bool:
    return numbers_in(a) != numbers_in(b)
