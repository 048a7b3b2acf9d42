"""A hand-written mini WordNet folder (index.noun + data.noun in the database format)."""

from pathlib import Path

LICENCE = "  1 This is a hand-written test file in the WordNet database format.\n"
# offset: (words, hypernym offsets)
SYNSETS = {
    1: (["entity"], []),
    2: (["physical_entity"], [1]),
    3: (["organism", "being"], [2]),
    4: (["person", "individual"], [3]),
    5: (["man", "adult_male"], [4]),
    6: (["animal"], [3]),
    7: (["canine", "canid"], [6]),
    8: (["dog", "domestic_dog"], [7]),
    9: (["artifact"], [2]),
    10: (["vehicle"], [9]),
    11: (["car", "auto"], [10]),
    12: (["tree"], [3]),
    13: (["frump", "dog"], [4]),  # dog.n.02: a dull unattractive woman (sense 2)
}


def data_line(offset: int, words: list[str], hypers: list[int]) -> str:
    ws = " ".join(f"{w} 0" for w in words)
    ptrs = " ".join(f"@ {h:08d} n 0000" for h in hypers)
    ptr_part = f"{len(hypers):03d}" + (f" {ptrs}" if ptrs else "")
    return f"{offset:08d} 03 n {len(words):02x} {ws} {ptr_part} | gloss of {words[0]}\n"


def write_mini_wordnet(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [data_line(o, w, h) for o, (w, h) in SYNSETS.items()]
    (folder / "data.noun").write_text(LICENCE + "".join(lines))
    senses: dict[str, list[int]] = {}
    for o, (words, _) in SYNSETS.items():
        for w in words:
            senses.setdefault(w, []).append(o)
    index = [
        f"{w} n {len(offs)} 1 @ {len(offs)} 0 " + " ".join(f"{o:08d}" for o in offs) + "\n"
        for w, offs in sorted(senses.items())
    ]
    (folder / "index.noun").write_text(LICENCE + "".join(index))
    return folder
