"""The `language` rule: is the reasoning (and the answer) in the prompt's language?

Score = share of target-language words, separately for the reasoning and for the final
answer (the R1 paper's language-consistency measure). What is NOT a word of any language and
so never counts: LaTeX (inline, display, environments, commands), code (fences and inline),
URLs, numbers, tokens with digits or underscores (variable names), single letters, all-caps
acronyms, Greek letters (unless the target is Greek) and any word that occurs in the prompt.

Cross-script mixing (Chinese in English, English in Chinese, Cyrillic...) is found by the
Unicode script of each word, which costs microseconds. Same-script mixing (French in
English) needs a language identifier (lingua, offline models, ~10 ms per 6k-char text): it
runs only on paragraphs whose function words look like another language's.

Default threshold 0.95: a quoted term or two in a 1,000-word reasoning scores above 0.99;
a paragraph that switches language (the failure the paper filters) drops it below 0.95.
`min_foreign_words` (3) keeps short answers from failing on a single foreign word.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter

from pydantic import Field

from distill.core.r1_format import Parts
from distill.core.records import Trace, Verdict
from distill.filters.registry import RuleOptions, rule


class LanguageOptions(RuleOptions):
    target: str | None = Field(
        default=None, description="Target language (ISO 639-1) for every record; default: the record's, else the prompt's.", json_schema_extra={"flags": ["--language"]})
    threshold: float = Field(
        default=0.95, ge=0, le=1, description="Minimum share of target-language words in the reasoning and in the answer."
    )
    min_foreign_words: int = Field(
        default=3, ge=1, description="Never reject for fewer foreign words than this (a quoted term is not code-switching)."
    )
    same_script: bool = Field(
        default=True, description="Also catch same-script mixing (French in English) with lingua, on suspicious paragraphs only."
    )
    languages: list[str] = Field(
        default=["en", "fr", "de", "es", "it", "pt", "nl"],
        description="Latin-script languages told apart (prompt detection and same-script mixing).",
    )


_STRIP = [
    re.compile(r"```.*?(```|$)", re.DOTALL),
    re.compile(r"`[^`\n]*`"),
    re.compile(r"\$\$.*?\$\$|\\\[.*?\\\]|\\\(.*?\\\)", re.DOTALL),
    re.compile(r"\\begin\{(\w+\*?)\}.*?\\end\{\1\}", re.DOTALL),
    re.compile(r"(?<!\\)\$[^$]*?(?<!\\)\$", re.DOTALL),
    re.compile(r"\\[a-zA-Z]+\*?"),
    re.compile(r"https?://\S+|www\.\S+"),
    re.compile(r"<\|?[\w▁|｜]+\|?>"),  # special tokens
]
_TOKEN = re.compile(r"[^\W\d_](?:[\w'’-]*[^\W_])?")

# The first word of a character's Unicode name is its script for every script we handle.
_SCRIPT_OF_NAME = {
    "LATIN": "latin", "CJK": "han", "HIRAGANA": "kana", "KATAKANA": "kana", "HANGUL": "hangul",
    "CYRILLIC": "cyrillic", "GREEK": "greek", "ARABIC": "arabic", "HEBREW": "hebrew",
    "DEVANAGARI": "devanagari", "THAI": "thai",
}
# Scripts whose text has no spaces between words: every character counts as a word.
_UNSPACED = {"han", "kana", "thai"}
SCRIPTS_OF_LANGUAGE = {
    "zh": {"han"}, "ja": {"han", "kana"}, "ko": {"hangul", "han"}, "ru": {"cyrillic"}, "uk": {"cyrillic"},
    "bg": {"cyrillic"}, "sr": {"cyrillic"}, "ar": {"arabic"}, "fa": {"arabic"}, "he": {"hebrew"},
    "hi": {"devanagari"}, "el": {"greek"}, "th": {"thai"},
}
_SCRIPT_NAMES = {"han": "chinese", "kana": "japanese", "hangul": "korean", "latin": "latin-script"}
# Frequent function words, distinctive per language: a paragraph whose hits favour another
# language is sent to lingua; nothing is rejected on these lists alone.
FUNCTION_WORDS = {
    "en": "the and is of to that this we it with for are be so then which not have if can",
    "fr": "le la les est et des une que nous pour dans qui sont avec donc cette alors mais pas",
    "de": "der die das und ist nicht wir mit ein eine sich auf dass auch zu den von dann",
    "es": "el la los las es y que una para con por del pero entonces como este esta",
    "it": "il lo la gli è e che una per con non sono del della questo quindi allora",
    "pt": "o os as é e que uma para com não são do da este então como isso",
    "nl": "de het een en is van dat niet we met op zijn voor dan ook deze",
}
_FUNCTION_SETS = {lang: frozenset(words.split()) for lang, words in FUNCTION_WORDS.items()}


def script_of(word: str) -> str:
    if word.isascii():
        return "latin"
    name = unicodedata.name(word[0], "")
    return _SCRIPT_OF_NAME.get(name.split(" ", 1)[0], "other")


def strip_non_words(text: str) -> str:
    for pattern in _STRIP:
        text = pattern.sub(" ", text)
    return text


def words_of(text: str, exempt: frozenset[str] = frozenset()) -> list[tuple[str, str]]:
    """(word, script) for every countable word of `text`."""
    out = []
    for token in _TOKEN.findall(strip_non_words(text)):
        script = script_of(token)
        if script == "latin" and (len(token) < 2 or (token.isupper() and len(token) <= 5)):
            continue
        if script in _UNSPACED:
            out.extend((char, script) for char in token if char not in exempt)
        elif token.lower() in exempt:
            continue
        else:
            out.append((token, script))
    return out


@functools.cache
def _detector(languages: tuple[str, ...]):
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    codes = [IsoCode639_1.from_str(code) for code in languages]
    return LanguageDetectorBuilder.from_iso_codes_639_1(*codes).build()


def _lingua(text: str, languages: tuple[str, ...]) -> str | None:
    found = _detector(languages).detect_language_of(text)
    return found.iso_code_639_1.name.lower() if found else None


def target_language(trace: Trace, options: LanguageOptions) -> str:
    """The record's language, else the option's, else the prompt's; English without clear evidence."""
    if trace.language:
        return trace.language.lower()
    if options.target:
        return options.target.lower()
    scripts = Counter(script for _, script in words_of(trace.problem))
    if not scripts:
        return "en"
    top = scripts.most_common(1)[0][0]
    if top in ("han", "kana"):
        return "ja" if scripts["kana"] else "zh"
    by_script = {"hangul": "ko", "cyrillic": "ru", "arabic": "ar", "hebrew": "he", "devanagari": "hi", "greek": "el", "thai": "th"}
    if top in by_script:
        return by_script[top]
    # Math prompts are short and full of symbols, where lingua alone misreads English as
    # German or Portuguese: another language must win on function words AND on lingua.
    latin = [word.lower() for word, script in words_of(trace.problem) if script == "latin"]
    hits = {lang: sum(w in fw for w in latin) for lang, fw in _FUNCTION_SETS.items() if lang in options.languages}
    best = max(hits, key=lambda lang: hits[lang], default="en")
    if best == "en" or hits[best] < 2 or hits[best] <= hits.get("en", 0):
        return "en"
    found = _lingua(" ".join(latin), tuple(options.languages))
    return found if found == best else "en"


def _same_script_foreign(text: str, target: str, options: LanguageOptions, exempt: frozenset[str]) -> Counter:
    """Words of paragraphs that lingua places in another Latin-script language, by language."""
    foreign: Counter = Counter()
    own = _FUNCTION_SETS.get(target)
    languages = tuple(dict.fromkeys([target, *options.languages]))
    for paragraph in re.split(r"\n\s*\n", text):
        words = [w.lower() for w, script in words_of(paragraph, exempt) if script == "latin"]
        if len(words) < 6:
            continue
        hits = {lang: sum(w in fw for w in words) for lang, fw in _FUNCTION_SETS.items()}
        rival = max((lang for lang in hits if lang != target), key=lambda lang: hits[lang])
        suspicious = hits[rival] >= 2 and hits[rival] > (hits[target] if own else 0)
        if not suspicious:
            continue
        found = _lingua(" ".join(words), languages)
        if found and found != target:
            foreign[found] += len(words)
    return foreign


def score_text(text: str, target: str, options: LanguageOptions, exempt: frozenset[str]) -> tuple[float, int, Counter]:
    """(share of target-language words, number of words, foreign words by language or script)."""
    words = words_of(text, exempt)
    if not words:
        return 1.0, 0, Counter()
    allowed = SCRIPTS_OF_LANGUAGE.get(target, {"latin"})
    foreign: Counter = Counter()
    for _, script in words:
        if script not in allowed and not (script == "greek" and target != "el") and script != "other":
            foreign[_SCRIPT_NAMES.get(script, script)] += 1
    if options.same_script and allowed == {"latin"} and target in _FUNCTION_SETS:
        foreign.update(_same_script_foreign(text, target, options, exempt))
    counted = sum(1 for _, script in words if not (script == "greek" and target != "el") and script != "other")
    if not counted:
        return 1.0, 0, Counter()
    share = max(0.0, 1 - sum(foreign.values()) / counted)
    return share, counted, foreign


@rule("language", LanguageOptions, order=60)
def check_language(trace: Trace, parts: Parts, config) -> Verdict:
    options = config.language
    target = target_language(trace, options)
    exempt = frozenset(word.lower() for word, _ in words_of(trace.problem))
    lowest = 1.0
    for section, text in (("reasoning", parts.reasoning), ("answer", parts.answer)):
        share, _count, foreign = score_text(text, target, options, exempt)
        lowest = min(lowest, share)
        if share < options.threshold and sum(foreign.values()) >= options.min_foreign_words:
            name, _ = foreign.most_common(1)[0]
            return Verdict(
                passed=False,
                reason=f"{name} {100 * (1 - share):.0f}% of words in {section} (target {target})",
                score=round(share, 4),
            )
    return Verdict(passed=True, reason=f"{target}, {100 * lowest:.1f}% target-language words", score=round(lowest, 4))
