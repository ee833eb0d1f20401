"""The paper's user study, run locally: evaluators pick, blind, the best image of several methods per question.

    create.py    `flexip study create`: image folders of several methods (IMAGES/<subject>/<prompt>/*.png) → one study file
    store.py     the study file (SQLite, WAL): questions, images, the blind order per evaluator, every vote committed at once
    results.py   vote shares per method with 95 % Wilson intervals, for both questions (Flex and ID-Pres)
    export.py    the results and the raw votes as CSV
    page.py      the Study tab (gradio)

The two questions are the paper's: "Flex" (which image best follows the text while keeping the subject) and
"ID-Pres" (which image best preserves the subject).
"""

QUESTIONS = {
    "flex": "Which image best follows the text while keeping the subject?",
    "id_pres": "Which image best preserves the subject (the one in the reference)?",
}
QUESTION_NAMES = {"flex": "Flex", "id_pres": "ID-Pres"}
