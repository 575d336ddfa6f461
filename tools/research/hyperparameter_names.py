"""How papers write hyperparameters and training stages: value notations, table row names (with qualifiers
such as "Batch size (prompts per step)"), sentence patterns, and the stage vocabulary (SFT, DPO, GRPO...).

    number("2\\times 10^{-5}")                     # 2e-05
    row_label("KL coefficient \\beta")             # ("kl_beta", None)
    stage_in("Hyperparameters of the RL stage (GRPO)")  # "GRPO"
"""

from __future__ import annotations

import re

LR = (r"(?:\d+(?:\.\d+)?\s*(?:\\times|×|x|\*)\s*)?10\s*\^?\s*\{?\s*[-−–]\s*\d+\s*\}?"
      r"|\d+(?:\.\d+)?\s*[eE]\s*[-−–]\s*\d+|\d*\.\d+")
NUM = rf"{LR}|\d[\d,]*(?:\.\d+)?\s*%|\d[\d,]*(?![\d.]*\d)"
INT = r"\d[\d,]*(?![\d.]*\d)"
SET_NUM = rf"{LR}|\d+(?:\.\d+)?\s*%?"
GAP = r"[^.\d|;]{0,30}?"
WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "ten": 10}
SCHEDULERS = (r"cosine(?: with (?:warm-?up|restarts|min lr))?|linear|constant(?: with warm-?up)?|polynomial"
              r"|inverse[ _]sqrt|wsd")
# Row names in tables, most specific first (a "learning rate warmup" row is warmup, not learning_rate).
LABELS = [
    ("lr_scheduler", r"(?:(?:lr|learning[\s-]rate)\s+)?(?:scheduler?|schedule|decay)(?:\s+type)?"),
    ("warmup", r"(?:(?:lr|learning[\s-]rate)\s+)?warm-?up(?:\s+(?:ratio|steps|proportion|fraction))?"),
    ("learning_rate", r"(?:(?:peak|initial|max(?:imum)?|base|actor|policy)\s+)?(?:learning[\s-]rates?|lr)"),
    ("per_device_batch_size", r"(?:micro|per[\s-](?:device|gpu))[\s-]*(?:train(?:ing)?\s+)?batch[\s-]size.*"
                              r"|batch[\s-]size\s+per\s+(?:gpu|device)"),
    ("gradient_accumulation_steps", r"grad(?:ient)?\s+accumulation(?:\s+steps)?"),
    ("batch_size", r"(?:(?:global|effective|total|train(?:ing)?|rollout|prompt)\s+)*batch[\s-]size"),
    ("group_size", r"group\s+size|num(?:ber)?(?:\s+of)?\s+(?:generations|completions|rollouts|samples)"
                   r"|(?:completions|generations|samples|responses|rollouts)\s+per\s+(?:prompt|question|query)"
                   r"|num_generations"),
    ("max_prompt_length", r"max(?:imum)?\.?\s+prompt\s+length|max_prompt_length"),
    ("max_completion_length", r"max(?:imum)?\.?\s+(?:completion|response|generation|output|new)\s+(?:length|tokens)"
                              r"|max_(?:completion_length|new_tokens)"),
    ("max_length", r"max(?:imum)?\.?\s+(?:seq(?:uence)?\.?\s+|context\s+|input\s+)?length|max_(?:seq_)?length"
                   r"|(?:sequence|context|cutoff)\s+length"),
    ("epochs", r"(?:num(?:ber)?(?:\s+of)?\s+)?(?:training\s+)?epochs?"),
    ("max_steps", r"(?:(?:total|max(?:imum)?|number\s+of)\s+)?(?:(?:training|optimi[sz]ation|rl|gradient)\s+)?steps"
                  r"|max_steps|training\s+iterations"),
    ("kl_beta", r"kl\s+(?:coefficient|coef|penalty|weight)(?:\s*(?:\\beta|β))?|\\beta|β|beta"),
    ("clip_epsilon", r"clip(?:ping)?\s+(?:ratio|range|epsilon|parameter)|\\epsilon|\\varepsilon|ε|epsilon"),
    ("temperature", r"(?:(?:sampling|generation|rollout)\s+)?temperature"),
    ("weight_decay", r"weight\s+decay"),
    ("lora_rank", r"lora\s+(?:rank|r)|rank"),
    ("lora_alpha", r"lora\s+(?:alpha|α|\\alpha)|\\alpha|α|alpha"),
]
NOT_BATCH = r"(?<!micro )(?<!micro-)(?<!mini )(?<!mini-)(?<!device )(?<!per-gpu )"
PROSE = {  # patterns over one sentence; the value is group "v"
    "learning_rate": [rf"(?:learning[\s-]rates?|\blr\b)\s*{GAP}(?P<v>(?:{LR})(?:\s*(?:,|and|or|to|/)\s*(?:{LR}))*)"],
    "epochs": [r"\b(?P<v>\d+|one|two|three|four|five|ten)\s+(?:training\s+)?epochs?\b"],
    "batch_size": [rf"{NOT_BATCH}batch[\s-]size\s*{GAP}(?P<v>{INT})",
                   r"(?P<v>\d[\d,]*)\s+prompts\s+(?:per|each)\s+(?:training\s+|optimi[sz]ation\s+)?step",
                   r"(?:each|per)\s+(?:training\s+|optimi[sz]ation\s+)?step\s+(?:uses|samples|contains)\s+(?P<v>\d[\d,]*)"
                   r"\s+prompts"],
    "per_device_batch_size": [rf"(?:micro|per[\s-](?:device|gpu))[\s-]batch[\s-]size\s*{GAP}(?P<v>{INT})"],
    "gradient_accumulation_steps": [rf"gradient accumulation(?: steps)?\s*{GAP}(?P<v>{INT})",
                                    r"\b(?P<v>\d+)\s+gradient accumulation steps"],
    "lr_scheduler": [r"\b(?P<v>cosine|linear|constant)\s+(?:learning[\s-]rate(?!\s+warm)|(?:lr\s+)?"
                     r"(?:schedule|scheduler|decay|annealing))"],
    "group_size": [rf"(?:group (?:size|of)|number of generations|num_generations)\s*{GAP}(?P<v>\d+)",
                   r"\b(?-i:G)\s*=\s*(?P<v>\d+)",
                   r"\b(?P<v>\d+)\s+(?:sampled\s+)?(?:completions|generations|responses|rollouts|samples|outputs)\s+"
                   r"(?:per|for each|for every)\s+(?:prompt|question|query|problem)"],
    "lora_rank": [r"(?i:lora)\b.*?\brank\s*(?:of|=|:|to)?\s*(?:r\s*=?\s*)?(?P<v>\d+)",
                  r"(?i:lora)\b.*?\br\s*=\s*(?P<v>\d+)"],
    "lora_alpha": [r"(?i:lora)\b.*?(?:\\alpha|α|\balpha)\s*(?:=|of|:|to)?\s*(?P<v>\d+)"],
    "warmup": [r"warm-?up(?:\s*(?:ratio|proportion|steps|of|is|was|set to|over|the|first|for|=|:))*\s*"
               r"(?P<v>\d+(?:\.\d+)?\s*%|\d*\.\d+|\d+\s+steps)",
               r"(?P<v>\d+(?:\.\d+)?\s*%|\d+\s+steps)\s+(?:(?:of|the|training|steps|for|linear)\s+)*warm-?up",
               r"(?P<v>\d+)\s+warm-?up\s+steps"],
    "max_prompt_length": [rf"max(?:imum)?\.?\s+prompt\s+length\s*{GAP}(?P<v>{INT})"],
    "max_completion_length": [rf"max(?:imum)?\.?\s+(?:completion|response|generation|output)\s+length\s*{GAP}"
                              rf"(?P<v>{INT})",
                              r"(?:up to|at most)\s+(?P<v>\d[\d,]*)\s+(?:new|generated|completion)\s+tokens"],
    "max_length": [rf"(?:max(?:imum)?\.?\s+(?:sequence\s+|context\s+|input\s+)?length|(?:sequence|context)\s+length"
                   rf"|max_(?:seq_)?length)\s*{GAP}(?P<v>{INT})"],
    "max_steps": [rf"(?:for|total of)\s+(?P<v>{INT})\s+(?:training\s+|optimi[sz]ation\s+|gradient\s+|RL\s+)?steps\b",
                  rf"(?:max_steps|training steps|total steps)\s*{GAP}(?P<v>{INT})"],
    "kl_beta": [r"(?:\\beta|β|\bbeta|KL (?:coefficient|penalty|coef))\s*(?:(?:is|was)\s+)?(?:set\s+)?(?:=|of|:|to)\s*"
                r"(?P<v>\d*\.\d+|\d+)"],
    "clip_epsilon": [r"(?:clip(?:ping)? (?:ratio|range|epsilon)|\\epsilon|ε)\s*(?:=|of|:|to)\s*(?P<v>\d*\.\d+)"],
    "temperature": [r"temperature\s*(?:of|=|:|to|is|was|set to)?\s*(?P<v>\d*\.\d+|\d+)"],
    "weight_decay": [rf"weight decay\s*{GAP}(?P<v>{LR}|\d+)"],
}
LABEL_IN_TEXT = re.compile("|".join(rf"(?P<{k}>{p})" for k, p in [
    ("learning_rate", r"learning[\s-]rates?|\blr\b"), ("batch_size", r"batch[\s-]size"),
    ("group_size", r"group size|number of generations"), ("kl_beta", r"KL coefficient|\\beta|β"),
    ("epochs", r"\bepochs\b"), ("warmup", r"warm-?up"), ("temperature", r"temperature")]), re.I)
STAGES = [  # specific methods first; "RL" only when no specific one is named
    ("GRPO", r"\bGRPO\b|(?i:group relative policy optimi[sz]ation)"), ("PPO", r"\bPPO\b|(?i:proximal policy)"),
    ("RLOO", r"\bRLOO\b"), ("DPO", r"\bDPO\b|(?i:direct preference optimi[sz]ation)"), ("SimPO", r"\bSimPO\b"),
    ("ORPO", r"\bORPO\b"), ("KTO", r"\bKTO\b"), ("IPO", r"\bIPO\b"),
    ("SFT", r"\bSFT\b|(?i:supervised fine-?tuning|instruction[\s-]tuning)"),
    ("reward model", r"(?i:reward model(?:ing)? (?:training|stage))"), ("distillation", r"(?i:\bdistillation\b)"),
    ("RL", r"\bRL(?:HF|VR)?\b|(?i:reinforcement learning)"),
]
STAGE = re.compile("|".join(f"(?P<s{i}>{p})" for i, (_, p) in enumerate(STAGES)))
SYMBOLS = {"lora_rank", "lora_alpha", "kl_beta", "clip_epsilon"}  # row names matched whole, never as a prefix


def number(text: str) -> float | int | str:
    """"2\\times 10^{-5}" -> 2e-05, "2,048" -> 2048, "10%" -> "10%", "three" -> 3."""
    raw = text.strip().lower()
    if raw in WORDS:
        return WORDS[raw]
    if raw.endswith("%") or raw.endswith("steps"):
        return " ".join(raw.split())
    flat = re.sub(r"[\s{}]", "", raw).replace("−", "-").replace("–", "-").replace(",", "")
    flat = flat.replace("\\times", "x").replace("×", "x").replace("*", "x").replace("^", "")
    power = re.fullmatch(r"(?:(\d+(?:\.\d+)?)x)?10(-\d+)", flat)
    if power:
        return float(f"{power.group(1) or 1}e{power.group(2)}")
    value = float(flat)
    return int(value) if value.is_integer() and "e" not in flat and "." not in flat else value


def stage_in(text: str) -> str | None:
    """The most specific training stage `text` names (GRPO over a generic "RL"), or None."""
    found = [STAGES[int(m.lastgroup[1:])][0] for m in STAGE.finditer(text or "")]
    specific = [s for s in found if s != "RL"]
    return (specific or found or [None])[0]


def row_label(cell: str) -> tuple[str | None, str | None]:
    """A table row's hyperparameter name and its qualifier: "Batch size (prompts per step)" ->
    ("batch_size", "prompts per step"); "KL coefficient \\beta" -> ("kl_beta", None)."""
    qualifier = "; ".join(re.findall(r"\(([^()]{1,60})\)", cell)) or None
    core = " ".join(re.sub(r"\([^()]*\)|[*:]", " ", cell).lower().split())
    bare = re.sub(r"\s+(?:\\[a-z]+|[a-zα-ω])$", "", core) or core
    qualifier = qualifier and re.sub(r"[^\w\s./%-]", "", qualifier)[:40]
    for name, label in LABELS:
        for text in dict.fromkeys((core, bare)):
            if re.fullmatch(label, text) or (name not in SYMBOLS and len(text) <= 40
                                             and re.match(rf"(?:{label})\b", text)):
                return name, qualifier
    return None, None


def cell_values(cell: str) -> tuple[list[str], bool]:
    """The value(s) in a table cell and whether they are a sweep ("{1e-6, 3e-6}", "1e-6 / 3e-6")."""
    cell = cell.strip()
    if re.fullmatch(SCHEDULERS, cell, re.I):
        return [cell], False
    inner = re.fullmatch(r"\\?\{(.*)\\?\}|\[(.*)\]", cell)
    parts = re.findall(SET_NUM, inner.group(1) or inner.group(2)) if inner else re.findall(NUM, cell)
    if inner or (len(parts) > 1 and re.fullmatch(rf"(?:\s*(?:{NUM})\s*[,/]?)+", cell)):
        return parts, len(parts) > 1
    first = re.match(rf"\s*(?P<v>{NUM})", cell)
    rest = cell[first.end():] if first else ""
    if not first or re.search(r"\d", re.sub(r"\([^()]*\)", "", rest)) or re.match(r"[kKMB]\b", rest):
        return [], False  # "4k" is 4000 or 4096: better no value than a wrong one
    return [first.group("v")], False
