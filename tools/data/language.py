"""Which language a row is written in, by a dependency-free heuristic: the Unicode script of its
letters (unicodedata), and for Latin script the language whose common function words it uses most.
A guide for spotting a minority of rows in another language, not a language identifier.
"""

from __future__ import annotations

import unicodedata

from evals.contamination import words

# Non-Latin scripts, by the first word of a letter's Unicode name -> the language code reported
SCRIPTS = {"CYRILLIC": "cyrillic", "GREEK": "el", "ARABIC": "ar", "HEBREW": "he", "HANGUL": "ko",
           "HIRAGANA": "ja", "KATAKANA": "ja", "CJK": "zh", "DEVANAGARI": "hi", "BENGALI": "bn", "THAI": "th",
           "TAMIL": "ta", "TELUGU": "te", "GEORGIAN": "ka", "ARMENIAN": "hy", "ETHIOPIC": "am"}
STOPWORDS = {
    "en": "the a and of to is in that it for with was on are as be this have you not what how which from they he "
          "she by at or an will would can there their has does many were been his her who when if i we my our me "
          "your so do but all out",
    "fr": "le la les des est et une un du de en à que qui dans pour pas sur au avec ce il elle sont nous vous mais "
          "ou aux cette son ses sa leur été très ne se par plus",
    "de": "der die das und ist nicht ein eine zu den mit von sich des auf für dem im es wie auch ich sie wir "
          "werden wird oder aber nach bei",
    "es": "el la de los las del que y en un una es por con para como más pero se su sus al lo esta está son muy "
          "también hay porque cuando",
    "pt": "o os do da dos das em um uma que não para com é se por mais como mas ao na no são também você "
          "ele ela muito",
    "it": "il gli della che è di un una per non con sono del nel alla anche come ma si ha questo questa "
          "molto perché",
    "nl": "de het een en van ik je dat niet is op te zijn voor met hij maar ook als er wat wordt naar bij "
          "deze aan haar ze heeft hebben uit om dan nog door",
}
STOPWORD_SETS = {code: frozenset(text.split()) for code, text in STOPWORDS.items()}
MIN_LETTERS = 12  # fewer letters than this: too little to judge
MIN_STOP_SHARE = 0.08  # of a Latin row's words, to name its language
MIN_OTHER_WORDS = 8  # a Latin row without function words of a known language needs this many words to count


def row_language(text: str) -> str:
    """A language code ("en", "fr", "zh", "ja", "cyrillic", ...), "latin-other" (Latin script, none of the
    listed languages), or "undetermined" (too little text)."""
    counts: dict[str, int] = {}
    letters = 0
    for char in text:
        if char.isalpha():
            letters += 1
            script = unicodedata.name(char, "UNKNOWN").split(" ", 1)[0]
            counts[script] = counts.get(script, 0) + 1
    if letters < MIN_LETTERS:
        return "undetermined"
    script = max(counts, key=counts.get)
    if script != "LATIN":
        if script == "CJK" and counts.get("HIRAGANA", 0) + counts.get("KATAKANA", 0):
            return "ja"
        return SCRIPTS.get(script, script.lower())
    tokens = words(text)
    hits = {code: sum(t in stop for t in tokens) for code, stop in STOPWORD_SETS.items()}
    best = max(hits, key=hits.get)
    if tokens and hits[best] / len(tokens) >= MIN_STOP_SHARE:
        return best
    return "latin-other" if len(tokens) >= MIN_OTHER_WORDS else "undetermined"


def language_profile(texts: list[str], row_ids: list[int] | None = None, max_examples: int = 5) -> dict:
    """Rows per language, the main language, and the rows (ids) of each other language."""
    ids = row_ids or list(range(len(texts)))
    counts: dict[str, int] = {}
    examples: dict[str, list[int]] = {}
    for row_id, text in zip(ids, texts, strict=True):
        language = row_language(text)
        counts[language] = counts.get(language, 0) + 1
        if language != "undetermined" and len(examples.setdefault(language, [])) < max_examples:
            examples[language].append(row_id)
    judged = {k: v for k, v in counts.items() if k != "undetermined"}
    main = max(judged, key=judged.get) if judged else None
    others = {k: v for k, v in sorted(judged.items(), key=lambda kv: -kv[1]) if k != main}
    checked = sum(judged.values())
    return {"heuristic": "Unicode script of the letters; for Latin script, the language whose function words "
                         "the row uses most (en, fr, de, es, pt, it, nl); a guide, not a detector",
            "rows_checked": checked, "undetermined": counts.get("undetermined", 0), "main": main,
            "main_share": round(judged[main] / checked, 4) if main else 0.0,
            "other_languages": others,
            "other_share": round(sum(others.values()) / checked, 4) if checked else 0.0,
            "other_rows": {k: examples[k] for k in others}}
