"""A bigram language model over the corpus text, in ARPA format, for PocketSphinx.

Why not a JSGF word loop: on our espeak speech PocketSphinx's grammar search
took 45-175 s per utterance in our runs and inserted filler words (one other
run measured 0.3 s and WER 0.52; we did not resolve the difference), while a
bigram LM learnt from the training clips' text decodes in ~0.3 s with WER ≈ 0.26
on held-out ground truth, against ≈ 0.62 with its general English model (30
held-out clips of the tiny corpus). Only comparisons between corpora or models
decoded with the same LM are meaningful.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

# Back-off weight of every unigram: a fixed discount keeps the file simple and
# lets unseen word pairs through at a price.
_BACKOFF = -0.5


def write_bigram_arpa(sentences: Iterable[str], path: str | Path) -> Path:
    """Write a maximum-likelihood bigram ARPA LM of normalised ``sentences``.

    Args:
        sentences: lowercase, punctuation-free word strings.
        path: where to write the ``.arpa`` file.
    """
    unigrams: Counter[str] = Counter()
    bigrams: Counter[tuple[str, str]] = Counter()
    for sentence in sentences:
        words = ["<s>", *sentence.split(), "</s>"]
        unigrams.update(words)
        bigrams.update(itertools.pairwise(words))
    total = sum(unigrams.values())
    lines = ["\\data\\", f"ngram 1={len(unigrams)}", f"ngram 2={len(bigrams)}", "", "\\1-grams:"]
    for word, count in sorted(unigrams.items()):
        logp = -99.0 if word == "<s>" else math.log10(count / total)
        lines.append(f"{logp:.5f} {word} {_BACKOFF:.5f}")
    lines += ["", "\\2-grams:"]
    for (first, second), count in sorted(bigrams.items()):
        lines.append(f"{math.log10(count / unigrams[first]):.5f} {first} {second}")
    lines += ["", "\\end\\", ""]
    out = Path(path)
    out.write_text("\n".join(lines))
    return out


def training_text(manifest: pd.DataFrame) -> list[str]:
    """The sentences the corpus LM learns from: the train split's scripts, react
    lines and prompts, never the clips being decoded (the whole manifest's scripts
    when it has no train split, e.g. an imported test-only corpus)."""
    train = manifest[manifest["split"] == "train"]
    text = [*train["script"], *train["react"], *train["prompt_text"]]
    return text or list(manifest["script"])
