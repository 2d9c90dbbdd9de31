"""End to end on a slice of the bundled CIFAR-10 sample: teacher -> labels -> filter -> student
-> eval -> export, then a rerun that resumes (skips) every finished stage."""

import glob
import os

import numpy as np
import pytest

from noisy_student.assets import SAMPLE_DIR as SAMPLE


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tf):
    from noisy_student.pipeline.loop import Run, RunConfig

    config = RunConfig(
        run_dir=str(tmp_path_factory.mktemp("run")),
        label_data=os.path.join(SAMPLE, "train-00000-of-00004"),
        unlabel_data=os.path.join(SAMPLE, "unlabeled-00000-of-00008"),
        eval_data=os.path.join(SAMPLE, "validation-00000-of-00002"),
        num_classes=10,
        small_images=True,
        teacher_model="b0",
        student_models=["b0"],
        width_coefficient=0.25,
        depth_coefficient=0.25,
        train_batch_size=32,
        eval_batch_size=100,
        train_epochs=0.5,
        student_epochs=0.5,
        unlabel_ratio=2,
        min_threshold=0.0,  # an untrained teacher is not confident
        randaug_num_layers=2,
        randaug_magnitude=5,
        checkpoint_every=2,
        quiet=True,
    )
    run = Run(config)
    return run, run.run_all()


def test_every_stage_recorded(finished_run):
    run, manifest = finished_run
    names = [stage.name for stage in run.stages()]
    assert names == ["teacher", "teacher/eval", "iter1/label", "iter1/filter", "iter1/student",
                     "iter1/eval", "export"]
    assert set(manifest["stages"]) == set(names)
    stages = manifest["stages"]
    assert stages["iter1/label"]["num_labeled"] == 1125  # one unlabeled shard of the sample
    assert stages["iter1/filter"]["num_written"] > 0
    for name in ("teacher/eval", "iter1/eval"):
        assert stages[name]["num_examples"] == 1000 and 0 <= stages[name]["top1"] <= 1
    # 250 labeled images, batch 32, half an epoch.
    assert stages["teacher"]["steps"] == stages["iter1/student"]["steps"] == int(0.5 * 250 / 32)


def test_rerun_skips_finished_stages(finished_run, monkeypatch):
    from noisy_student.pipeline.loop import Run

    run, manifest = finished_run
    rerun = Run(run.config)

    def fail(*args, **kwargs):
        raise AssertionError("a finished stage ran again")

    monkeypatch.setattr("noisy_student.pipeline.stages.train", fail)
    monkeypatch.setattr("noisy_student.pseudo_labels.labeling.label_shards", fail)
    monkeypatch.setattr("noisy_student.pseudo_labels.filtering.filter_and_balance", fail)
    assert rerun.run_all()["stages"] == manifest["stages"]


def test_export_signatures_match_the_model(finished_run, tf):
    from noisy_student.data import records
    from noisy_student.data.preprocessing import preprocess_for_eval
    from noisy_student.pipeline.stages import load_model

    run, manifest = finished_run
    model = load_model(run.context, 1)
    loaded = tf.saved_model.load(manifest["stages"]["export"]["export_dir"])
    encoded = [
        records.parse_labeled(r)["image"]
        for r in tf.data.TFRecordDataset(os.path.join(SAMPLE, "validation-00000-of-00002")).take(6)
    ]
    images = tf.stack([preprocess_for_eval(e, 32, small_images=True) for e in encoded])
    expected = tf.nn.softmax(model(images, training=False)).numpy()

    from_bytes = loaded.signatures["serving_bytes"](image_bytes=tf.stack(encoded))
    from_floats = loaded.signatures["serving_default"](images=images)
    for outputs in (from_bytes, from_floats):
        np.testing.assert_allclose(outputs["probabilities"].numpy(), expected, atol=1e-5)
        np.testing.assert_array_equal(outputs["classes"].numpy(), expected.argmax(-1))


def test_student_model_is_saved_with_ema_weights(finished_run):
    from noisy_student.pipeline.stages import model_dir

    run, _ = finished_run
    assert glob.glob(os.path.join(model_dir(run.context, 1), "model.keras"))
    assert glob.glob(os.path.join(model_dir(run.context, 1), "ckpt-*.index"))


def test_on_the_fly_teacher_from_a_given_checkpoint(finished_run, tmp_path):
    """A given teacher (--teacher_checkpoint) labels inside the student's step: no label or
    filter stage, and the student trains on the unlabeled images directly."""
    import dataclasses

    from noisy_student.pipeline.loop import Run, RunError
    from noisy_student.pipeline.stages import load_model, model_dir

    run, _ = finished_run
    config = dataclasses.replace(
        run.config,
        run_dir=str(tmp_path / "fly"),
        teacher_checkpoint=os.path.join(model_dir(run.context, 0), "model.keras"),
        on_the_fly_teacher=True,
        eval_data=None,
    )
    fly = Run(config)
    names = [stage.name for stage in fly.stages()]
    assert names == ["teacher", "teacher/eval", "iter1/student", "iter1/eval", "export"]
    given = load_model(fly.context, 0)
    trained = load_model(run.context, 0)
    for mine, theirs in zip(given.weights, trained.weights, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    with pytest.raises(RunError, match="iter1/label is not a stage of this run"):
        fly.run_stage("iter1/label")  # --mode=label with an on-the-fly teacher
    result = fly.run_stage("iter1/student")
    assert result["steps"] == int(0.5 * 250 / 32) and result["train_unlabeled_loss"] > 0


def test_demo_table_and_plot(finished_run, tmp_path):
    from PIL import Image

    from noisy_student.cli import demo
    from noisy_student.reporting import rows, summary

    run, manifest = finished_run
    stages = manifest["stages"]
    out = summary.format_table(rows.result_rows(manifest))
    teacher, student = stages["teacher/eval"]["top1"], stages["iter1/eval"]["top1"]
    assert f"top-1 {teacher:.1%}" in out and "on 1000 test images" in out
    assert f"teacher top-1 {teacher:.1%} -> student 1 top-1 {student:.1%}" in out
    student_row = next(line for line in out.splitlines() if line.startswith("iter1/student"))
    agreement = stages["iter1/student"]["train_unlabeled_agreement"]
    assert f"agrees with teacher {agreement:.1%}" in student_row
    assert f"clean train acc {stages['teacher']['clean_train_top1']:.1%}" in out
    assert "1125 images labeled" in out
    # trained in one sitting: its training time is recorded and no resume is claimed
    assert 0 < stages["teacher"]["train_seconds"] <= stages["teacher"]["seconds"]
    assert "resumed_from_step" not in stages["teacher"] and "resumed" not in out
    resumed = rows.training_text({"model": "b0", "steps": 1500, "resumed_from_step": 1000})
    assert resumed == "b0: 1500 steps, resumed at step 1000 (seconds: that sitting's)"
    path = demo.plot(run.config.run_dir, rows.result_rows(manifest), str(tmp_path / "demo.png"))
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 500


def test_student_init_from_teacher_copies_every_weight_or_names_the_mismatch(keras):
    from noisy_student.training.student_init import initialized_from as _initialized_from
    from tests.tiny_models import make_model_fn

    teacher = make_model_fn(keras, seed=1)()
    student = _initialized_from(make_model_fn(keras, seed=2), teacher)()
    assert len(student.weights) == len(teacher.weights)
    for mine, theirs in zip(student.weights, teacher.weights, strict=True):
        np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs))
    wider = _initialized_from(make_model_fn(keras, seed=2, width_coefficient=0.5), teacher)
    with pytest.raises(ValueError, match="--student_init=teacher needs a student with the"):
        wider()


def test_grown_student_starts_with_its_teachers_function(finished_run, tmp_path):
    """--student_init=grow: a deeper student (its own coefficients; at width 0.25 block1a is
    residual, so the width cannot grow exactly) is built from the trained teacher: same logits
    before training (grow_noise=0)."""
    import dataclasses

    from efficientnet_tf import architecture_of
    from noisy_student.pipeline import stages
    from noisy_student.pipeline.loop import Run
    from noisy_student.training.student_init import grown_from

    run, _ = finished_run
    config = dataclasses.replace(
        run.config, run_dir=str(tmp_path / "grow"), student_init="grow", grow_noise=0.0,
        student_depth_coefficient=0.5, stochastic_depth_rate=0.1)
    ctx = Run(config).context
    teacher = stages.load_model(run.context, 0)
    student = grown_from(stages.model_fn(ctx, 1), teacher, seed=3, noise_stddev=0.0)()
    assert student.count_params() > 1.2 * teacher.count_params()
    record = architecture_of(student)
    assert (record.width_coefficient, record.depth_coefficient) == (0.25, 0.5)
    assert architecture_of(stages.model_fn(ctx, 0)()).depth_coefficient == 0.25
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(student(x, training=False)),
                               np.asarray(teacher(x, training=False)), atol=1e-4, rtol=0)


def test_seed_makes_a_teacher_training_reproducible(tf, tmp_path):
    """Two tiny teachers trained with the same --seed end with identical checkpoints (weights,
    EMA, optimizer slots: same initialization, batches, augmentation, dropout and stochastic
    depth); another seed starts from other weights. Students get other seeds than their
    teacher."""
    from noisy_student.pipeline import stages
    from noisy_student.pipeline.loop import Run, RunConfig

    def run_with(seed: int | None, name: str, **overrides) -> Run:
        return Run(RunConfig(
            run_dir=str(tmp_path / name),
            label_data=os.path.join(SAMPLE, "train-00000-of-00004"),
            num_classes=10, num_train_images=64, small_images=True, teacher_model="b0",
            width_coefficient=0.25, depth_coefficient=0.25, train_batch_size=16,
            train_epochs=0.75, checkpoint_every=3, quiet=True, seed=seed, **overrides))

    def trained(seed: int, name: str) -> dict:
        run = run_with(seed, name)
        assert run.run_stage("teacher")["steps"] == 3
        assert run.manifest["settings"]["teacher"]["seed"] == seed
        folder = stages.model_dir(run.context, 0)
        reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(folder))
        return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}

    first, again = trained(7, "a"), trained(7, "b")
    assert set(first) == set(again)
    for name, value in first.items():
        np.testing.assert_array_equal(value, again[name], err_msg=name)

    def initial_weights(seed: int) -> list[np.ndarray]:
        ctx = run_with(seed, f"init{seed}").context
        stages.seed_training(ctx, 0)  # what train_teacher does before the trainer builds it
        return stages.model_fn(ctx, 0)().get_weights()

    seven, eight = initial_weights(7), initial_weights(8)
    kernels = [i for i, w in enumerate(seven) if w.ndim >= 2]
    assert kernels and all(not np.array_equal(seven[i], eight[i]) for i in kernels)
    assert all(np.array_equal(a, b) for a, b in zip(seven, initial_weights(7), strict=True))

    ctx = run_with(7, "a", student_models=["b0", "b0"]).context
    seeds = [stages.training_seed(ctx, i) for i in range(3)]
    assert len(set(seeds)) == 3 and seeds == [stages.training_seed(ctx, i) for i in range(3)]
    assert stages.training_seed(run_with(None, "a").context, 0) is None


def test_deterministic_turns_on_op_determinism(tf, tmp_path, monkeypatch):
    """--deterministic asks TensorFlow for op determinism before the run builds anything;
    without it the run leaves TensorFlow's (process-wide) setting alone."""
    from noisy_student.pipeline.loop import Run, RunConfig

    calls = []
    monkeypatch.setattr(tf.config.experimental, "enable_op_determinism",
                        lambda: calls.append("on"))
    common = dict(label_data=os.path.join(SAMPLE, "train-00000-of-00004"), num_classes=10,
                  small_images=True, quiet=True, seed=1)
    Run(RunConfig(run_dir=str(tmp_path / "plain"), **common))
    assert calls == []
    Run(RunConfig(run_dir=str(tmp_path / "repeatable"), deterministic=True, **common))
    assert calls == ["on"]


def test_stage_lines_on_the_console(tf, tmp_path, monkeypatch, console_records):
    """A stage prints one line as it starts and one as it ends with its figures and time (the
    console logger; the command line shows them by default), and one when it is skipped."""
    from noisy_student.pipeline import loop
    from noisy_student.run.layout import parse_stage

    kind = parse_stage("teacher").kind
    monkeypatch.setitem(loop.STAGE_FUNCTIONS, kind, lambda context, iteration: {
        "model": "b0", "steps": 3, "train_accuracy": 0.25})
    run = loop.Run(loop.RunConfig(
        run_dir=str(tmp_path / "run"), label_data=os.path.join(SAMPLE, "train-00000-of-00004"),
        num_classes=10, small_images=True, quiet=True))
    run.run_stage("teacher")
    run.run_stage("teacher")
    lines = [r.getMessage() for r in console_records]
    assert lines[0] == "Stage teacher: started."
    assert lines[1].startswith("Stage teacher: done in 0 s: b0: 3 steps, train acc 25.0%")
    assert lines[2:] == ["Stage teacher: already complete, skipped."]
