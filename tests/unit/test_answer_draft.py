"""The reasoner's draft of next tokens, learned from earlier answers."""

from __future__ import annotations

from dubops.reasoning.drafting import AnswerDraft


def test_a_learned_answer_is_proposed_as_a_chain_until_it_ends():
    draft = AnswerDraft(context=2)
    draft.learn([1, 2, 3, 4, 5, 6])
    assert draft.propose([9, 1, 2], 3) == [3, 4, 5]
    assert draft.propose([1, 2], 10) == [3, 4, 5, 6]  # nothing followed 6
    assert draft.propose([7, 8], 4) == [] and draft.propose([2], 4) == []


def test_a_later_answer_replaces_the_guess_and_the_table_stays_bounded():
    draft = AnswerDraft(context=1, max_entries=3)
    draft.learn([1, 2])
    draft.learn([1, 3])
    assert draft.propose([1], 1) == [3]
    draft.learn([5, 6, 7, 8, 9])
    assert len(draft) == 3
