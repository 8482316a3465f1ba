"""Decoder input layout: [prefix][left-padded, truncated prompt][<caption> target </s>], loss on the
target only, positions that ignore padding."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from curate_captioner.prompts import IGNORE, build_batch

PAD, CAPTION, EOS = 0, 4, 2
token_lists = st.lists(st.integers(5, 300), max_size=160)


@given(prompts=st.lists(token_lists, min_size=1, max_size=6), data=st.data(),
       prefix_length=st.integers(1, 8), max_prompt=st.sampled_from([0, 1, 5, 128]))
def test_layout(prompts: list[list[int]], data: st.DataObject, prefix_length: int, max_prompt: int) -> None:
    targets = data.draw(st.lists(st.lists(st.integers(5, 300), max_size=40), min_size=len(prompts), max_size=len(prompts)))
    batch = build_batch(prompts, targets, prefix_length=prefix_length, max_prompt_tokens=max_prompt,
                        pad_id=PAD, caption_id=CAPTION, eos_id=EOS)
    kept = [p[:max_prompt] for p in prompts]
    width = batch.text_ids.shape[1]
    assert batch.prompt_length == max(len(p) for p in kept)
    assert batch.attention_mask.shape == batch.position_ids.shape == batch.labels.shape == (len(prompts), prefix_length + width)
    for row, (prompt, target) in enumerate(zip(kept, targets, strict=True)):
        ids = batch.text_ids[row].tolist()
        mask = batch.attention_mask[row].tolist()
        labels = batch.labels[row].tolist()
        # Left padding: the prompt ends where <caption> starts, the same column in every row.
        assert ids[batch.prompt_length - len(prompt):batch.prompt_length] == prompt
        assert ids[: batch.prompt_length - len(prompt)] == [PAD] * (batch.prompt_length - len(prompt))
        assert mask[:prefix_length] == [1] * prefix_length
        assert mask[prefix_length: prefix_length + batch.prompt_length] == [0] * (batch.prompt_length - len(prompt)) + [1] * len(prompt)
        segment = [CAPTION, *target, EOS]
        assert ids[batch.prompt_length: batch.prompt_length + len(segment)] == segment
        assert ids[batch.prompt_length + len(segment):] == [PAD] * (width - batch.prompt_length - len(segment))
        # Loss only on the target and </s>, each label on the column of the token it names.
        supervised = [(col, lab) for col, lab in enumerate(labels) if lab != IGNORE]
        assert [lab for _, lab in supervised] == [*target, EOS]
        assert all(col > batch.target_start for col, _ in supervised)
        # Positions count real columns only: a padded row sees 0, 1, 2, … like an unpadded one.
        real = [p for p, m in zip(batch.position_ids[row].tolist(), mask, strict=True) if m]
        assert real == list(range(len(real)))


@given(prompts=st.lists(token_lists, min_size=1, max_size=5))
def test_inference_rows_end_together(prompts: list[list[int]]) -> None:
    batch = build_batch(prompts, None, prefix_length=3, max_prompt_tokens=128, pad_id=PAD, caption_id=CAPTION, eos_id=EOS)
    assert batch.labels is None
    assert batch.text_ids[:, -1].tolist() == [CAPTION] * len(prompts)
    assert batch.attention_mask[:, -1].tolist() == [1] * len(prompts)
    assert all(len(p[:128]) <= batch.prompt_length <= 128 for p in prompts)


def test_truncation_keeps_the_first_128_tokens() -> None:
    prompt = list(range(10, 310))
    batch = build_batch([prompt], None, prefix_length=2, max_prompt_tokens=128, pad_id=PAD, caption_id=CAPTION, eos_id=EOS)
    assert batch.prompt_length == 128
    assert batch.text_ids[0, :128].tolist() == prompt[:128]


def test_mismatched_targets_are_an_error() -> None:
    with pytest.raises(ValueError, match="2 prompts but 1 targets"):
        build_batch([[5], [6]], [[7]], prefix_length=1, max_prompt_tokens=4, pad_id=PAD, caption_id=CAPTION, eos_id=EOS)


def test_empty_prompts_have_no_prompt_columns() -> None:
    batch = build_batch([[], []], [[9], [9, 9]], prefix_length=2, max_prompt_tokens=128, pad_id=PAD, caption_id=CAPTION, eos_id=EOS)
    assert batch.prompt_length == 0
    assert batch.text_ids.tolist() == [[CAPTION, 9, EOS, PAD], [CAPTION, 9, 9, EOS]]
