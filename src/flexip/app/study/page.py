"""The Study tab: an evaluator types a name, answers each question blind (A, B, C … in an order of their own), and
every vote is committed as it is cast; typing the same name later resumes where they stopped. The results (vote
shares with 95 % Wilson intervals) and a CSV export sit below. Thin: every rule lives in `store.py` and
`results.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

import gradio as gr

from flexip.app.server import user_errors
from flexip.app.study import QUESTION_NAMES, QUESTIONS
from flexip.app.study.export import export, shares
from flexip.app.study.results import table_rows
from flexip.app.study.store import LETTERS, Ballot, StudyStore

NO_STUDY = (
    "No study is loaded. Make one from the image folders of the methods to compare, then open it:\n\n"
    "```\nflexip study create study.sqlite --method FlexIP=runs/flexip/images --method IP-Adapter=runs/ipa/images --references refs/\n"
    "flexip studio --study study.sqlite      # or, without a model: flexip study serve study.sqlite\n```"
)
INTRO = (
    "Each question shows the subject's reference, a prompt and the images of several methods, labelled A, B, C … in a "
    "random order. Pick the image that answers the question best with its letter's button, below the images. Every vote is saved the moment you cast it; come back "
    "with the same name to resume."
)


def study_tab(store: StudyStore | None, out_dir: str | os.PathLike) -> None:
    """The tab's components and events, inside the caller's `gr.Blocks`."""
    if store is None:
        gr.Markdown(NO_STUDY)
        return
    methods = len(store.methods())
    gr.Markdown(INTRO)
    ballot = gr.State(None)
    with gr.Row():
        evaluator = gr.Textbox(label="Your evaluator name or code", placeholder="e.g. e07", scale=3)
        start = gr.Button("Start or resume", variant="primary", scale=1)
    progress = gr.Markdown()
    question = gr.Markdown(elem_id="study-question")
    with gr.Row():
        references = gr.Gallery(label="Reference (the subject)", columns=2, height=220, allow_preview=False, format="png", scale=1)
        candidates = gr.Gallery(label="Candidates", columns=methods, height=220, allow_preview=False, format="png", scale=3, elem_classes="pixelated")
    with gr.Row():
        buttons = [gr.Button(letter, visible=False, min_width=60) for letter in LETTERS[:methods]]
    with gr.Accordion("Results: vote shares with 95 % Wilson intervals", open=False):
        refresh = gr.Button("Refresh results")
        header, rows = table_rows(shares(store))
        table = gr.Dataframe(value=rows, headers=header, interactive=False, wrap=True)
        export_button = gr.Button("Export CSV (results and every vote)")
        files = gr.File(label="CSV files", file_count="multiple", interactive=False)

    def show(next_ballot: Ballot | None, evaluator_name: str, saved: str = ""):
        if next_ballot is None:
            answered, total = store.progress(evaluator_name)
            done = f"{saved}**All {total} questions answered, thank you, {evaluator_name}.** ({answered} votes saved.)"
            return (None, done, "", [], [], *[gr.update(visible=False) for _ in buttons])
        text = f"{saved}Question {next_ballot.number} of {next_ballot.total} ({next_ballot.answered} answered so far)"
        asked = f"### {QUESTIONS[next_ballot.question]}\n**Prompt:** {next_ballot.prompt}  \n_({QUESTION_NAMES[next_ballot.question]})_"
        reference_images = store.reference_images(next_ballot.task_id)
        candidate_images = list(zip(store.candidate_images(next_ballot), next_ballot.letters))
        return (next_ballot, text, asked, reference_images, candidate_images, *[gr.update(visible=True) for _ in buttons])

    @user_errors
    def study_start(evaluator_name: str):
        """Start, or resume, the evaluator's questions."""
        return show(store.next_ballot(evaluator_name), evaluator_name.strip())

    @user_errors
    def study_vote(letter: str, current: Ballot | None):
        """Cast the vote for `letter` on the question shown; it is committed before the next question appears."""
        if current is None:
            raise gr.Error("type your evaluator name and press “Start or resume” first", print_exception=False)
        fresh = store.cast(current, letter)
        saved = f"Saved your vote for question {current.number}. " if fresh else "That question already had your vote (the first one stands). "
        return show(store.next_ballot(current.evaluator), current.evaluator, saved)

    def study_results():
        """The vote shares and their 95 % Wilson intervals, as a table."""
        return table_rows(shares(store))[1]

    def study_export():
        """Write the results and the votes as CSV under the studio's outputs."""
        return [str(path) for path in export(store, Path(out_dir) / "study")]

    outputs = [ballot, progress, question, references, candidates, *buttons]
    start.click(study_start, [evaluator], outputs, api_name="study_start", concurrency_id="study", concurrency_limit=4)
    evaluator.submit(study_start, [evaluator], outputs, api_visibility="undocumented", concurrency_id="study", concurrency_limit=4)
    for index, button in enumerate(buttons):
        button.click(
            study_vote,
            [button, ballot],
            outputs,
            api_name="study_vote" if index == 0 else f"study_vote_{index}",
            api_visibility="public" if index == 0 else "undocumented",
            concurrency_id="study",
            concurrency_limit=4,
        )
    refresh.click(study_results, None, table, api_name="study_results", concurrency_id="study", concurrency_limit=4)
    export_button.click(study_export, None, files, api_name="study_export", concurrency_id="study", concurrency_limit=4)


def study_app(store: StudyStore, out_dir: str | os.PathLike) -> gr.Blocks:
    """A page with the study alone (no model loaded): `flexip study serve`."""
    with gr.Blocks(title="FlexIP study", analytics_enabled=False) as blocks:
        gr.Markdown("# FlexIP user study")
        study_tab(store, out_dir)
    return blocks
