"""mRank against the paper's Table 1 (SPEC §4), and the `flexip eval rank` command."""

from __future__ import annotations

import pandas as pd
import pytest
from click.testing import CliRunner

from flexip.errors import FlexIPInputError
from flexip.evaluation.ranking import load_rank_table, rank_methods, sort_by_mrank, to_markdown

# method, printed mRank, CLIP-T, CLIP-I, DINO-I, CLIP-IQA, Aesthetic
TABLE_1 = [
    ("BLIP-Diffusion", 8.8, 0.166, 0.681, 0.374, 0.486, 5.234),
    ("ELITE", 6.2, 0.269, 0.793, 0.657, 0.522, 5.437),
    ("MoMA", 5.8, 0.265, 0.830, 0.656, 0.546, 5.437),
    ("SSR-Encoder", 5.2, 0.277, 0.802, 0.581, 0.568, 5.578),
    ("IP-Adapter", 4.2, 0.209, 0.855, 0.728, 0.581, 5.594),
    ("IP-Adapter-Instruct", 4.8, 0.234, 0.833, 0.701, 0.584, 5.459),
    ("λ-ECLIPSE", 4.4, 0.296, 0.747, 0.467, 0.589, 5.597),
    ("DisEnVisioner", 4.4, 0.255, 0.851, 0.732, 0.470, 5.658),
    ("FlexIP", 1.2, 0.284, 0.873, 0.739, 0.598, 6.039),
]
METRICS = ["CLIP-T", "CLIP-I", "DINO-I", "CLIP-IQA", "Aesthetic"]
TIED = {"ELITE", "MoMA"}  # 5.437 on Aesthetic as printed; the paper broke the tie with unrounded values


def table_1() -> pd.DataFrame:
    return pd.DataFrame([(row[0], *row[2:]) for row in TABLE_1], columns=["method", *METRICS])


def test_table_1_reproduces_every_untied_row():
    ranked = rank_methods(table_1()).set_index("method")
    for method, printed, *_ in TABLE_1:
        if method not in TIED:
            assert round(ranked.loc[method, "mRank"], 1) == pytest.approx(printed), method


def test_table_1_tie_gets_the_average_rank():
    ranked = rank_methods(table_1()).set_index("method")
    # printed numbers tie for 7th/8th on Aesthetic: both get 7.5 (the paper: MoMA 7, ELITE 8)
    assert ranked.loc["ELITE", "rank Aesthetic"] == 7.5
    assert ranked.loc["MoMA", "rank Aesthetic"] == 7.5
    assert ranked.loc["ELITE", "mRank"] == pytest.approx(6.1)  # printed 6.2 = (4 + 7 + 5 + 7 + 8) / 5
    assert ranked.loc["MoMA", "mRank"] == pytest.approx(5.9)  # printed 5.8 = (5 + 5 + 6 + 6 + 7) / 5
    # ranks on every metric sum to 1 + … + 9 (ties share, never lose rank mass)
    for metric in METRICS:
        assert ranked[f"rank {metric}"].sum() == 45


def test_markdown_and_sorting():
    ranked = rank_methods(table_1())
    markdown = to_markdown(ranked)
    assert markdown.splitlines()[0].split("|")[1].strip() == "method"
    assert "| FlexIP " in markdown and "0.284 (2)" in markdown and "5.437 (7.5)" in markdown
    assert list(sort_by_mrank(ranked)["method"])[:2] == ["FlexIP", "IP-Adapter"]


def test_bad_tables_raise_clear_errors():
    with pytest.raises(FlexIPInputError, match="Aesthetic"):
        rank_methods(table_1().drop(columns=["Aesthetic"]), metrics=METRICS)
    duplicated = pd.concat([table_1(), table_1().iloc[:1]])
    with pytest.raises(FlexIPInputError, match="unique"):
        rank_methods(duplicated)
    broken = table_1().astype({"CLIP-T": object})
    broken.loc[0, "CLIP-T"] = "n/a"
    with pytest.raises(FlexIPInputError, match="BLIP-Diffusion/CLIP-T"):
        rank_methods(broken)


def test_rank_cli_on_csv(tmp_path, cli):
    csv = tmp_path / "table1.csv"
    pd.DataFrame([(row[0], row[1], *row[2:]) for row in TABLE_1], columns=["method", "mRank", *METRICS]).to_csv(csv, index=False)
    out_md, out_csv = tmp_path / "rank.md", tmp_path / "rank.csv"
    result = CliRunner().invoke(cli, ["eval", "rank", str(csv), "--markdown", str(out_md), "--csv", str(out_csv)])
    assert result.exit_code == 0, result.output
    assert "| FlexIP" in result.output and out_md.read_text() in result.output
    written = pd.read_csv(out_csv).set_index("method")
    assert written.loc["FlexIP", "mRank"] == pytest.approx(1.2)
    assert list(written.columns[:6]) == ["mRank", *METRICS]
    assert load_rank_table([csv])["method"].tolist() == [row[0] for row in TABLE_1]


def test_rank_cli_reports_a_bad_csv_as_a_user_error(tmp_path, cli):
    csv = tmp_path / "bad.csv"
    csv.write_text("method,CLIP-T\nA,0.2\n")
    result = CliRunner().invoke(cli, ["eval", "rank", str(csv)])
    assert result.exit_code == 2
    assert "error:" in result.output and "CLIP-I" in result.output
