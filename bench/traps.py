"""Made-up traps for the quality benchmark: pairs of questions that look alike and must not
share an answer. Written from templates that the training generator
(``training/verifier_train.py: hard_negatives``) does not produce: it swaps the first
two capitalised names, changes a digit, swaps the first and last long words, puts "not"
after an auxiliary, or puts one listed antonym; these swap lower-case roles in the middle,
reverse comparisons and directions, use number words and "un-"/"in-" prefixes, and change
the action on one object.
"""

from training.pair_data import Pair

_SWAPS = {  # template with {a} and {b}, then the two are swapped
    "How do I move money from my {a} account to my {b} account?": [
        ("savings", "checking"), ("business", "personal"), ("joint", "individual")],
    "Is {a} healthier than {b}?": [
        ("tea", "coffee"), ("rice", "pasta"), ("running", "swimming"), ("butter", "margarine")],
    "Can a {a} sue a {b} for breach of contract?": [
        ("tenant", "landlord"), ("employee", "employer"), ("patient", "doctor")],
    "Why do {a} chase {b}?": [("cats", "mice"), ("dogs", "cats"), ("lions", "zebras")],
    "How do I convert a {a} file into a {b} file?": [
        ("pdf", "word"), ("png", "jpeg"), ("csv", "excel"), ("mp4", "mp3")],
    "Should a {a} earn more than a {b}?": [
        ("nurse", "teacher"), ("manager", "engineer"), ("plumber", "lawyer")],
    "What happens when a {a} is mixed into {b}?": [
        ("acid", "water"), ("water", "oil"), ("salt", "ice")],
}  # fmt: skip

_CHANGES = [  # (stored question, a question that looks alike and asks something else)
    ("Which foods are safe for dogs to eat?", "Which foods are unsafe for dogs to eat?"),
    ("Is it legal to record a phone call?", "Is it illegal to record a phone call?"),
    ("What are the signs of a complete recovery?", "What are the signs of an incomplete recovery?"),
    ("What can I buy with a thousand dollars?", "What can I buy with a million dollars?"),
    ("How many calories are in one egg?", "How many calories are in three eggs?"),
    ("What was life like a hundred years ago?", "What will life be like a hundred years from now?"),
    ("How do I delete my Facebook account?", "How do I deactivate my Facebook account?"),
    ("How do I lock my iPhone screen?", "How do I unlock my iPhone screen?"),
    ("How do I freeze my credit report?", "How do I unfreeze my credit report?"),
    ("How do I reset my router password?", "How do I find my router password?"),
    ("Why do people procrastinate?", "How do people stop procrastinating?"),
    ("What should I eat to gain weight?", "What should I eat to keep my weight?"),
    ("Is coding a good career for introverts?", "Is sales a good career for introverts?"),
    ("How long does it take to boil an egg?", "How long does it take to fry an egg?"),
    ("Who is the richest person in the world?", "Who is the poorest person in the world?"),
    ("Which language should I learn first?", "Which language should I learn last?"),
]  # fmt: skip


def traps() -> list[Pair]:
    """Every trap as a pair labelled not duplicate (q1 stored, q2 asked)."""
    pairs = [
        Pair(template.format(a=a, b=b), template.format(a=b, b=a), False)
        for template, fillers in _SWAPS.items()
        for a, b in fillers
    ]
    pairs += [Pair(stored, asked, False) for stored, asked in _CHANGES]
    return pairs
