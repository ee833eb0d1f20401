"""The DreamBench loader: parsed from prompts_and_classes.txt, on the real copy and a tiny one."""

from __future__ import annotations

import pytest

from flexip.errors import FlexIPInputError
from flexip.evaluation.dreambench import (
    fill_template,
    load_dreambench,
    parse_prompts_and_classes,
    resolve_dreambench,
)

from .conftest import SHARED_DREAMBENCH, TINY_PROMPTS


@pytest.fixture(scope="module")
def real_bench():
    if not (SHARED_DREAMBENCH / "prompts_and_classes.txt").is_file():
        pytest.skip(f"no DreamBench copy at {SHARED_DREAMBENCH}")
    return load_dreambench(SHARED_DREAMBENCH)


def test_real_dreambench_counts(real_bench):
    assert len(real_bench.subjects) == 30
    assert len(real_bench.classes) == 15
    assert sorted(s.name for s in real_bench.live_subjects) == ["cat", "cat2", "dog", "dog2", "dog3", "dog5", "dog6", "dog7", "dog8"]
    assert all(len(subject.prompts()) == 25 for subject in real_bench.subjects)
    assert all(len(subject.images) >= 4 for subject in real_bench.subjects)


def test_real_dreambench_gives_the_right_prompt_list(real_bench):
    dog, teapot = real_bench.subject("dog"), real_bench.subject("teapot")
    assert dog.live and not teapot.live
    assert "a dog wearing a red hat" in dog.prompts()  # live-subject prompts
    assert "a teapot on top of pink fabric" in teapot.prompts()  # object prompts
    assert "a teapot wearing a red hat" not in teapot.prompts()
    assert dog.prompts()[1] == "a dog in the snow"  # zero-shot, class-noun form
    assert dog.prompts("sks")[1] == "a sks dog in the snow"
    assert real_bench.subject("bear_plushie").prompts()[0] == "a stuffed animal in the jungle"
    # the parent folder of dataset/ works too
    assert len(load_dreambench(SHARED_DREAMBENCH.parent).subjects) == 30


def test_parser_reads_the_official_format():
    table = parse_prompts_and_classes(TINY_PROMPTS)
    assert table.classes == {"dog": "dog", "can": "can"}
    assert table.object_templates[0] == "a {0} {1} in the jungle"
    assert len(table.live_templates) == 3
    assert fill_template("a red {0} {1}", "can") == "a red can"


def test_loader_errors_teach(tmp_path, tiny_bench_dir):
    with pytest.raises(FlexIPInputError, match="prompts_and_classes.txt"):
        load_dreambench(tmp_path)
    (tmp_path / "prompts_and_classes.txt").write_text("Classes\n\nsubject_name,class\nx,y\n")
    with pytest.raises(FlexIPInputError, match="no object prompts"):
        load_dreambench(tmp_path)
    bench = load_dreambench(tiny_bench_dir)
    with pytest.raises(FlexIPInputError, match="unknown DreamBench subject 'cat'"):
        bench.subject("cat")
    with pytest.raises(FlexIPInputError, match="out of range"):
        bench.subject("dog").reference(7)


def test_download_is_refused_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FlexIPInputError, match="downloads are disabled"):
        resolve_dreambench(tmp_path / "bench", download=True)


def test_fetch_unpacks_only_the_dataset_folder(tmp_path, tiny_bench_dir, monkeypatch):
    import shutil
    import zipfile

    from flexip.evaluation import fetch

    archive = tmp_path / "archive.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted(tiny_bench_dir.rglob("*")):
            if path.is_file():
                bundle.write(path, f"dreambooth-main/dataset/{path.relative_to(tiny_bench_dir).as_posix()}")
        bundle.writestr("dreambooth-main/README.md", "not part of the benchmark")

    def fake_download(url, destination, what, sha256=None):  # stands in for the network
        shutil.copy(archive, destination)
        return destination

    monkeypatch.setattr(fetch, "download", fake_download)
    bench = resolve_dreambench(tmp_path / "bench", download=True)
    assert [subject.name for subject in bench.subjects] == ["dog", "can"]
    assert sorted(p.name for p in (tmp_path / "bench").iterdir()) == ["dataset"]
    assert len(resolve_dreambench(tmp_path / "bench", download=True).subjects) == 2  # already there: no fetch
