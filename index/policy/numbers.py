"""Numbers in questions: what counts as one, and the rule every decision stage keeps above
its model: a candidate whose numbers differ from the query's is never served ("200 mg" /
"800 mg", "in 2019" / "in 2021"), however close the two texts look."""

import re

NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def numbers_in(text: str) -> frozenset[str]:
    return frozenset(NUMBER.findall(text))


def differing_numbers(a: str, b: str) -> bool:
    return numbers_in(a) != numbers_in(b)
