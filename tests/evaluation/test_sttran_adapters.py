"""Our batches and labels as STTran's evaluator inputs, on hand-built two-video cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scenellm.data import vocab
from scenellm.evaluation.sttran_adapters import ag_evaluator, sttran_gt, sttran_predictions
from scenellm.evaluation.sttran_inputs import read_ground_truth
from scenellm.model.batch import IGNORE_INDEX, VideoBatch
from scenellm.model.scene_graph_data import ObjectLabels, pair_targets

CUP = vocab.STTRAN_OBJECT_CLASSES.index("cup/glass/bottle")
BED = vocab.STTRAN_OBJECT_CLASSES.index("bed")


def shard_of_one_video() -> dict[str, torch.Tensor]:
    """Frame 0: person, cup (object 1), bed (object 2); frame 1: person, cup."""
    return {
        "boxes": torch.tensor([[0, 0, 10, 20], [5, 5, 8, 8], [1, 10, 30, 19],
                               [1, 1, 11, 21], [6, 6, 9, 9]], dtype=torch.float32),
        "labels": torch.tensor([1, CUP, BED, 1, CUP]),
        "frame_index": torch.tensor([0, 0, 0, 1, 1]),
        "obj_index": torch.tensor([0, 1, 2, 0, 1]),
        "pair_idx": torch.tensor([[0, 1], [0, 2], [3, 4]]),
        "im_idx": torch.tensor([0, 0, 1]),
    }


LABELS = {
    (0, 1): ObjectLabels(attention=[0], spatial=[2], contacting=[5, 8]),
    (0, 2): ObjectLabels(attention=[], spatial=[1, 3], contacting=[]),  # no attention label
    (1, 1): ObjectLabels(attention=[1], spatial=[], contacting=[8]),
}


def test_ground_truth_has_every_field_of_sttrans_gt():
    gt = sttran_gt(shard_of_one_video(), LABELS)
    assert len(gt) == 2 and [len(f) for f in gt] == [3, 2]
    person = gt[0][0]
    assert set(person) == {"person_bbox"}
    np.testing.assert_array_equal(person["person_bbox"], [[0, 0, 10, 20]])
    assert person["person_bbox"].shape == (1, 4) and person["person_bbox"].dtype == np.float64
    cup = gt[0][1]
    assert set(cup) == {"class", "bbox", "attention_relationship", "spatial_relationship",
                        "contacting_relationship"}
    assert cup["class"] == CUP and cup["bbox"].dtype == np.float64
    np.testing.assert_array_equal(cup["bbox"], [5, 5, 8, 8])
    assert cup["attention_relationship"].tolist() == [0]
    assert cup["spatial_relationship"].tolist() == [2]
    assert cup["contacting_relationship"].tolist() == [5, 8]
    assert all(t.dtype == torch.long for t in (cup["attention_relationship"],
                                               cup["spatial_relationship"]))
    np.testing.assert_array_equal(gt[1][0]["person_bbox"], [[1, 1, 11, 21]])
    assert gt[1][1]["attention_relationship"].tolist() == [1]


def test_an_object_without_attention_label_gets_no_attention_triplet():
    gt = sttran_gt(shard_of_one_video(), LABELS)
    assert gt[0][2]["attention_relationship"].numel() == 0
    truth = read_ground_truth(gt, (3, 6, 17))
    # labels per kind (rows) and object (columns: cup in frame 0, bed, cup in frame 1)
    assert truth.counts.tolist() == [[1, 0, 1], [1, 2, 0], [2, 0, 1]]


def test_every_ground_truth_triplet_is_found_without_constraint():
    """No constraint scores all 3 pairs × 26 predicates (< 100), so every GT triplet the
    adapters produce is recalled, and no phantom attention triplet of the bed lowers it."""
    evaluator = ag_evaluator("predcls", constraint="no")
    batch, out = one_video_batch_and_outputs()
    evaluator.evaluate_scene_graph(sttran_gt(shard_of_one_video(), LABELS),
                                   sttran_predictions(batch, out, 0))
    assert evaluator.result_dict["predcls_recall"][100] == [1.0, 1.0]


def test_training_targets_ignore_a_missing_attention_label():
    att, spa, con = pair_targets(LABELS, shard_of_one_video())
    assert att.tolist() == [0, IGNORE_INDEX, 1]
    assert spa[1].nonzero().squeeze(1).tolist() == [1, 3] and spa[2].sum() == 0
    assert con[0].nonzero().squeeze(1).tolist() == [5, 8]


def test_a_pair_with_no_labels_at_all_is_ignored_for_attention_and_all_zero():
    att, spa, con = pair_targets({}, shard_of_one_video())
    assert att.tolist() == [IGNORE_INDEX] * 3
    assert spa.sum() == 0 and con.sum() == 0


def one_video_batch_and_outputs(offset_objects: int = 0, offset_frames: int = 0):
    """The shard above as video 0 of a batch (optionally after another video's rows)."""
    s = shard_of_one_video()
    n, p = len(s["labels"]), len(s["im_idx"])
    pad_o, pad_f = offset_objects, offset_frames
    batch = VideoBatch(
        video_ids=["other", "v"] if pad_o else ["v"],
        obj_feats=torch.zeros(pad_o + n, 4),
        boxes=torch.cat([torch.zeros(pad_o, 4), s["boxes"]]),
        boxes_norm=torch.zeros(pad_o + n, 4),
        labels=torch.cat([torch.ones(pad_o, dtype=torch.long), s["labels"]]),
        is_person=torch.cat([torch.ones(pad_o, dtype=torch.bool), s["labels"] == 1]),
        frame_of_obj=torch.cat([torch.arange(pad_o), s["frame_index"] + pad_f]),
        video_of_obj=torch.cat([torch.zeros(pad_o, dtype=torch.long),
                                torch.full((n,), 1 if pad_o else 0)]),
        obj_pos=torch.zeros(pad_o + n, dtype=torch.long),
        video_of_frame=torch.cat([torch.zeros(pad_f, dtype=torch.long),
                                  torch.full((2,), 1 if pad_o else 0)]),
        frame_pos=torch.zeros(pad_f + 2, dtype=torch.long),
        frame_mask=torch.ones(1, 2, dtype=torch.bool),
        pair_idx=s["pair_idx"] + pad_o,
        frame_of_pair=s["im_idx"] + pad_f,
        video_of_pair=torch.full((p,), 1 if pad_o else 0),
        union_feats=torch.zeros(p, 4),
        attention=torch.zeros(p, dtype=torch.long),
        spatial=torch.zeros(p, 6),
        contacting=torch.zeros(p, 17),
    )
    gen = torch.Generator().manual_seed(0)
    out = {
        "object_logits": torch.randn(pad_o + n, len(vocab.STTRAN_OBJECT_CLASSES), generator=gen),
        "labels": torch.cat([torch.ones(pad_o, dtype=torch.long),
                             torch.tensor([1, BED, CUP, 1, CUP])]),
        "attention_logits": torch.randn(p, 3, generator=gen),
        "spatial_logits": torch.randn(p, 6, generator=gen),
        "contacting_logits": torch.randn(p, 17, generator=gen),
    }
    return batch, out


@pytest.mark.parametrize("offset", [(0, 0), (3, 2)])
def test_predictions_have_every_field_local_to_the_video(offset):
    batch, out = one_video_batch_and_outputs(*offset)
    b = 1 if offset[0] else 0
    pred = sttran_predictions(batch, out, b)
    assert set(pred) == {"boxes", "labels", "scores", "pred_labels", "pred_scores", "im_idx",
                         "pair_idx", "attention_distribution", "spatial_distribution",
                         "contacting_distribution"}
    s = shard_of_one_video()
    np.testing.assert_array_equal(pred["boxes"][:, 0], s["frame_index"].float())
    np.testing.assert_array_equal(pred["boxes"][:, 1:], s["boxes"])
    assert pred["labels"].tolist() == s["labels"].tolist()
    assert pred["scores"].tolist() == [1.0] * 5
    assert pred["pred_labels"].tolist() == [1, BED, CUP, 1, CUP]
    probs = out["object_logits"][offset[0]:].softmax(-1)
    expected = probs[torch.arange(5), torch.tensor([1, BED, CUP, 1, CUP])]
    expected[[0, 3]] = 1.0  # the person keeps score 1
    torch.testing.assert_close(pred["pred_scores"], expected)
    assert pred["im_idx"].tolist() == [0, 0, 1]
    assert pred["pair_idx"].tolist() == [[0, 1], [0, 2], [3, 4]]
    torch.testing.assert_close(pred["attention_distribution"], out["attention_logits"])
    torch.testing.assert_close(pred["spatial_distribution"], out["spatial_logits"].sigmoid())
    torch.testing.assert_close(pred["contacting_distribution"],
                               out["contacting_logits"].sigmoid())


def test_frames_count_from_the_videos_first_frame_even_when_it_holds_no_node():
    """SGDET: a frame where the detector found no person has no node; the next frame's
    predictions must still carry their own frame index, not 0."""
    batch, out = one_video_batch_and_outputs(3, 2)
    keep = torch.tensor([True, True, True, False, False, False, True, True])  # pad + frame 1
    nodes = keep.nonzero().squeeze(1)
    remap = torch.full((len(keep),), -1, dtype=torch.long)
    remap[nodes] = torch.arange(len(nodes))
    last_pair = torch.tensor([2])  # frame 1's pair (person 3, cup 4) of the video
    batch = VideoBatch(**{**batch.__dict__,
                          **{k: getattr(batch, k)[nodes] for k in (
                              "obj_feats", "boxes", "boxes_norm", "labels", "is_person",
                              "frame_of_obj", "video_of_obj", "obj_pos")},
                          "pair_idx": remap[batch.pair_idx[last_pair]],
                          **{k: getattr(batch, k)[last_pair] for k in (
                              "frame_of_pair", "video_of_pair", "union_feats", "attention",
                              "spatial", "contacting")}})
    out = {**{k: v[nodes] for k, v in out.items() if k in ("object_logits", "labels")},
           **{k: v[last_pair] for k, v in out.items() if k.endswith("_logits")
              and k != "object_logits"},
           "obj_scores": torch.tensor([0.9, 0.9, 0.9, 0.8, 0.4])}
    pred = sttran_predictions(batch, out, 1)
    assert pred["boxes"][:, 0].tolist() == [1.0, 1.0]
    assert pred["im_idx"].tolist() == [1] and pred["pair_idx"].tolist() == [[0, 1]]
    assert pred["pred_scores"].tolist() == pytest.approx([0.8, 0.4])  # the detector's


def test_ground_truth_with_perfect_predictions_scores_full_recall():
    """An end-to-end check of both adapters: predictions that put the highest score on
    each pair's true labels recall every GT triplet under the with constraint."""
    batch, out = one_video_batch_and_outputs()
    out["labels"] = shard_of_one_video()["labels"].clone()
    att = torch.full((3, 3), -5.0)
    att[0, 0] = att[2, 1] = 5.0
    spa = torch.full((3, 6), -5.0)
    spa[0, 2] = spa[1, 1] = 5.0
    con = torch.full((3, 17), -5.0)
    con[0, 5] = con[2, 8] = 5.0
    out.update(attention_logits=att, spatial_logits=spa, contacting_logits=con)
    evaluator = ag_evaluator("predcls", constraint="with")
    evaluator.evaluate_scene_graph(sttran_gt(shard_of_one_video(), LABELS),
                                   sttran_predictions(batch, out, 0))
    # with constraint: one predicate per pair and kind, so frame 0 can recall the cup's
    # attention, one spatial, one contacting and one of the bed's spatial labels: 4 of 6
    assert evaluator.result_dict["predcls_recall"][20] == pytest.approx([4 / 6, 1.0])
