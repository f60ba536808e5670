"""A byte-level BPE tokenizer trained offline on the corpus text (tiny preset).

Nothing can be downloaded here, so the tiny reasoner's tokenizer is learned
from what it will read and write: the instruction, the scripts and the
chain-of-thought answers (accepted and rejected). The eight tags are added
tokens, each one id, so a tag can never be half-written; they are *not*
"special" in the transformers sense, so decoding keeps them. Byte-level
fallback means an unseen word in a user's script still encodes.
"""

from __future__ import annotations

from collections.abc import Iterable

from dubops.data.schema import COT_TAGS

PAD, BOS, EOS, IMAGE = "<pad>", "<s>", "</s>", "<image>"
TAG_TOKENS = tuple(t for tag in COT_TAGS for t in (f"<{tag}>", f"</{tag}>"))


def train_tokenizer(texts: Iterable[str], vocab_size: int):  # -> PreTrainedTokenizerFast
    """BPE over ``texts`` with ``<pad> <s> </s> <image>`` and the tag tokens added."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS, IMAGE],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in TAG_TOKENS])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=None
    )
    fast.add_special_tokens({"additional_special_tokens": [IMAGE]})
    fast.image_token = IMAGE
    return fast
