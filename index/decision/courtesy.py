"""Courtesy and the shape of a request: the words a request can gain or lose without asking
anything else (a greeting, "please", "thanks", "could you"), the words that name the kind
of answer wanted (a language, a format, a length, a task), whether a text is a prompt
rather than a question, and the canonical form two texts share when courtesy, casing,
punctuation and whitespace are all that tell them apart (the exact-match key of a prompt).
Low in the layers: the keying of a prompt reads it too."""

import re

COURTESY_CLAUSE_CONTENT = 2  # content words a courtesy clause may hold ("a hand", "a small")
COURTESY_CLAUSE_WORDS = 12  # a greeting or a thanks of its own at an end, at most this long
PROMPT_SENTENCES = 3  # this many sentences make a prompt of a text
SENTENCE_END = re.compile(r"(?<=[.?!:])\s+|\n+")
LONG_WORDS = 40  # beyond this many words a query is a prompt: only neutral edits serve
TOKEN = re.compile(r"[A-Za-z0-9_']+|[+\-*/=<>()\[\]{}%&|^~#@$\\`]")
OPERATOR = re.compile(r"[+\-*/=<>()\[\]{}%&|^~#@$\\`]")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# courtesy and framing: words a request can gain or lose without asking anything else
COURTESY = _words(
    """hi hello hey heya hiya greetings dear morning afternoon evening folks everyone please
    pls plz kindly thanks thank thx ty cheers appreciate appreciated grateful regards
    sincerely help helping assist assistance favor favour wonder wondering hoping mind
    possible could"""
)
# function words: neutral only beside a courtesy word ("help me with this", "thanks in
# advance"), never alone ("to" / "from", "with" / "without"); no negation, no question word
FRAMING = _words(
    """a an the this that these those following of in on at to for with from by about as
    into out up so if and or but then it it's its is are was were be been being am do does
    did have has had would could i i'm im me my mine we our us you your you're yours they
    them their here just some any all also too again get got able there please lot lots
    much very many really advance good best well hope like love ok okay oh need want quick
    quickly bit question task request query problem team friend day i'd id we'd let let's"""
)
# what kind of answer is wanted: its language, format, length or tone, and the task
LANGUAGES = _words(
    """french spanish german italian portuguese dutch russian chinese mandarin cantonese
    japanese korean arabic hindi turkish polish swedish norwegian danish finnish greek
    hebrew english latin esperanto ukrainian vietnamese thai indonesian bengali urdu"""
)
FORMATS = _words(
    """json yaml xml csv html markdown table tables list lists bullet bullets bulleted
    numbered outline haiku poem poems limerick sonnet essay tweet email letter story
    dialogue script snippet pseudocode diagram chart summary tldr steps"""
)
LENGTHS = _words(
    """sentence sentences word words paragraph paragraphs line lines brief briefly short
    shorter longer detailed concise concisely simply eli5 formal informal casual funny
    humorous tone style"""
)
TASKS = _words(
    """explain fix translate summarize summarise rewrite rephrase paraphrase refactor debug
    optimize optimise document review convert compare classify describe define critique
    shorten expand continue complete"""
)
# the verbs an added instruction opens with ("Answer in French.", "Give it as a table.")
DIRECTIVES = TASKS | _words(
    """answer reply respond write give keep make return output show use limit include
    avoid format put present provide respond list"""
)
INSTRUCTION = LANGUAGES | FORMATS | LENGTHS | TASKS
NEGATIONS = _words("""not no never don't dont doesn't won't can't cannot without nor none
    neither avoid stop""")
# words a sentence opens with, capitalised there without being names
COMMON = _words(
    """what which who whom whose why how when where is are was were do does did can could
    should would will shall may might must has have had if there this that these those the
    a an in on at for to of and or but my your our their his her its i we you they he she"""
)
# who a greeting or a request addresses, right after it ("hi team", "could you")
ADDRESSED = _words("you team all everyone folks there friend friends guys me us")
MODALS = frozenset({"can", "could", "would", "will"})
NUMBER_WORDS = _words(
    """two three four five six seven eight nine ten eleven twelve fifteen twenty
    thirty forty fifty hundred thousand million billion first second third half double"""
)


def tokens(text: str) -> list[str]:
    return [token.lower() for token in TOKEN.findall(text)]


def courteous(words: list[str]) -> bool:
    if not words:
        return True
    return all(w in COURTESY or w in FRAMING for w in words) and any(w in COURTESY for w in words)


def courtesy_clause(words: list[str]) -> bool:
    """A short clause that greets, asks for help or thanks: a courtesy word, at most
    ``COURTESY_CLAUSE_CONTENT`` words that are neither courtesy nor framing ("a hand", "a
    small request"; "a small bakery in Lyon" is content), no task, format, number, code or
    negation."""
    content = sum(1 for w in words if w not in COURTESY and w not in FRAMING)
    return (
        len(words) <= COURTESY_CLAUSE_WORDS
        and content <= COURTESY_CLAUSE_CONTENT
        and any(w in COURTESY for w in words)
        and not any(w in INSTRUCTION or w in DIRECTIVES or w in NEGATIONS for w in words)
        and not any(w.isdigit() or OPERATOR.fullmatch(w) for w in words)
    )


def framed(words: list[str]) -> list[str]:
    """ "can you" / "would you" / "will you" read as "could you": one request."""
    return [
        "could" if w in MODALS and i + 1 < len(words) and words[i + 1] == "you" else w
        for i, w in enumerate(words)
    ]


def is_prompt(text: str) -> bool:
    """A prompt rather than a question: past ``LONG_WORDS`` words, or several sentences
    (an instruction, its input, its constraints), however it is laid out."""
    sentences = [part for part in SENTENCE_END.split(text.strip()) if TOKEN.search(part)]
    return len(sentences) >= PROMPT_SENTENCES or len(TOKEN.findall(text)) > LONG_WORDS


def canonical(text: str) -> str:
    """``text`` as a request, courtesy aside: its sentences that only greet, ask for help or
    thank dropped at either end, a courteous opening ("Could you please ...") and closing
    dropped, "can you" read as "could you", then its words and code operators, case-folded
    (sentence punctuation and whitespace gone). Two prompts that differ by courtesy alone
    have one canonical form."""
    sentences = [part for part in SENTENCE_END.split(text.strip()) if TOKEN.search(part)]
    words = [framed(tokens(sentence)) for sentence in sentences]
    while len(words) > 1 and (courteous(words[0]) or courtesy_clause(words[0])):
        words.pop(0)
    while len(words) > 1 and (courteous(words[-1]) or courtesy_clause(words[-1])):
        words.pop()
    flat = [word for sentence in words for word in sentence]
    start = _courteous_run(flat)
    end = len(flat) - _courteous_run(flat[::-1])
    return " ".join(flat[start:end] if start < end else flat)


def _courteous_run(words: list[str]) -> int:
    """How many opening words are courtesy: through the last courtesy word of the opening
    run of courtesy and framing words, and the words it addresses ("hi team", "could you");
    0 without a courtesy word."""
    run = 0
    while run < len(words) and (words[run] in COURTESY or words[run] in FRAMING):
        run += 1
    cut = 0
    for position, word in enumerate(words[:run]):
        if word in COURTESY or (cut and word in ADDRESSED):
            cut = position + 1
    return cut


MAX_COURTESY_CUT = 2 * COURTESY_CLAUSE_WORDS  # the most words a courtesy opening or closing cut


def courtesy_variants(text: str, limit: int = 64) -> list[str]:
    """The canonical forms ``text`` may share with a stored prompt that differs from it by
    courtesy alone: its own, and its words with each courteous opening and closing cut off
    ("Hey, I need a hand with this. Summarise ..." → "summarise ..."), at most ``limit``."""
    flat = framed(tokens(text))
    heads = [0] + [
        k
        for k in range(1, min(MAX_COURTESY_CUT, len(flat) - 1) + 1)
        if courteous(flat[:k]) or courtesy_clause(flat[:k])
    ]
    tails = [0] + [
        j
        for j in range(1, min(MAX_COURTESY_CUT, len(flat) - 1) + 1)
        if courteous(flat[-j:]) or courtesy_clause(flat[-j:])
    ]
    forms = [canonical(text)]
    for k in heads:
        for j in tails:
            if k + j < len(flat) and len(forms) < limit:
                forms.append(" ".join(flat[k : len(flat) - j]))
    return list(dict.fromkeys(forms))
