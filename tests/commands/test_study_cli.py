"""Naming a study by its output folder finds the study where it ran."""

from __future__ import annotations

from pathlib import Path

from explorer.commands.study import resolve


def test_an_output_folder_names_the_study_as_it_ran(tmp_path: Path) -> None:
    """The bundled example is run into ./explore-out/..., not into the output its file names: the folder wins."""
    study = tmp_path / "spec" / "study.yaml"
    study.parent.mkdir()
    example = Path(__file__).parents[2] / "examples" / "pose" / "mobilepose_dsnt.onnx"
    study.write_text(f"model: {example}\ndata: pose-synth:8:3\nboard: kv260\noutput: elsewhere\n")
    ran = tmp_path / "ran"
    ran.mkdir()
    (ran / "study.yaml.resolved").write_text(f"{study}\n")
    cfg = resolve(str(ran))
    assert cfg.store.output == ran.resolve() and cfg.store.url == f"journal:{ran.resolve() / 'study.journal'}"
    assert resolve(str(study)).store.output == (study.parent / "elsewhere").resolve()  # the file as written
