"""The FlexIP Studio page: Create (the live γ dial, the sweep strip, the control surface), Compare (FlexIP's γ
beside IP-Adapter's scale) and Study (the paper's blind user study).

A layout and small handlers only: each handler reads the page's values into the app's typed values
(`References`, `RenderSettings`) and calls the session; bad input (a `FlexIPError`) becomes a message in the
page. Events that use a model share the concurrency group "model" of size 1: one generation at a time, and
while the γ slider moves only its latest value waits (`trigger_mode="always_last"`).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import gradio as gr

from flexip.app.compare import MISSING, Baseline
from flexip.app.references import MAX_REFERENCES, MAX_UPLOAD_BYTES, MAX_UPLOAD_PIXELS, References, examples, from_example, from_uploads
from flexip.app.server import user_errors
from flexip.app.session import SURFACE_SCALES, SWEEP_GAMMAS, Rendered, Session
from flexip.app.settings import DIAL_MODES, MAX_SEED, MAX_STEPS, Dial, RenderSettings
from flexip.app.study.page import study_tab
from flexip.app.study.store import StudyStore
from flexip.gate import DEFAULT_GAMMA
from flexip.presets import photo_note

#: Small renders (the miniworld's 32 px) are shown scaled up with sharp pixels. On a narrow window the two columns
#: stack; the picture and its γ dial then come first (and the picture is smaller), the other controls below.
CSS = """
.pixelated img, #flexip-result img { image-rendering: pixelated; }
#flexip-result img { object-fit: contain; }
#flexip-command textarea { font-family: ui-monospace, Menlo, monospace; font-size: 0.85em; }
@media (max-width: 720px) {
  #flexip-outputs { order: -1; }
  #flexip-result { height: 260px !important; }
  .pixelated .grid-container { grid-template-columns: repeat(auto-fill, minmax(48px, 1fr)) !important; }
}
"""
MODEL = {"concurrency_id": "model", "concurrency_limit": 1}


def page_handler(action: Callable[[References, RenderSettings], tuple]) -> Callable:
    """A handler of the page's render inputs: the references, then the controls as keyword arguments named as the
    API shows them (`inputs_kwargs`, the `controls` dict of `build_studio`). It reads them once into
    `RenderSettings` and calls `action(references, settings)`; bad input becomes a message in the page."""

    @user_errors
    def handler(references, **page):
        return action(_need(references), settings_from_page(page))

    handler.__name__, handler.__doc__ = action.__name__, action.__doc__
    return handler


def settings_from_page(page: dict) -> RenderSettings:
    blocks, schedule = (page["gamma_down"], page["gamma_mid"], page["gamma_up"]), (page["gamma_start"], page["gamma_end"])
    return RenderSettings(
        prompt=page["prompt"],
        dial=Dial.read(page["dial"], page["gamma"], page["w_pres"], page["w_pers"], blocks, schedule),
        negative_prompt=page["negative_prompt"],
        adapter_scale=page["adapter_scale"],
        steps=page["steps"],
        guidance=page["guidance"],
        seed=page["seed"],
    )


def _need(references: References | None) -> References:
    if references is None:
        raise gr.Error(f"add 1 to {MAX_REFERENCES} reference images of the subject (upload, or click an example) first", print_exception=False)
    return references


def _status(rendered: Rendered, session: Session) -> str:
    source = "reused from the cache" if rendered.cached else "encoded now (once for these references)"
    return f"Rendered in {rendered.seconds:.2f} s. Reference encoding {source}; {session.encodings} encoding(s) since the studio started."


def build_studio(session: Session, baseline: Baseline | None = None, study: StudyStore | None = None) -> gr.Blocks:
    example_subjects = examples(session.base)
    defaults = session.defaults
    with gr.Blocks(title="FlexIP Studio", analytics_enabled=False) as blocks:
        gr.Markdown(
            f"# FlexIP Studio\nOne dial, **γ**, between keeping the subject (γ = 1) and following the text (γ = 0). Model: {session.description}."
        )
        references = gr.State(None)
        with gr.Tabs():
            with gr.Tab("Create", id="create"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=1, min_width=300, elem_id="flexip-inputs"):
                        uploads = gr.File(
                            label=f"Upload 1–{MAX_REFERENCES} reference images of one subject",
                            file_count="multiple",
                            file_types=["image"],
                            height=110,
                        )
                        gr.Markdown(
                            f"PNG, JPEG, WebP or BMP; up to {MAX_UPLOAD_BYTES // 2**20} MiB and {MAX_UPLOAD_PIXELS // 1_000_000} megapixels each."
                        )
                        thumbnails = {
                            "columns": 4,
                            "height": 140,
                            "fit_columns": False,
                            "allow_preview": False,
                            "interactive": False,
                            "format": "png",
                            "object_fit": "contain",
                        }
                        if example_subjects:
                            example_gallery = gr.Gallery(
                                value=[(images[0], name) for name, images in example_subjects.items()],
                                label="Examples: click one",
                                elem_id="flexip-examples",
                                elem_classes="pixelated",
                                **thumbnails,
                            )
                        in_use = gr.Gallery(label="References in use", elem_classes="pixelated", **thumbnails)
                        note = gr.Markdown(elem_id="flexip-note")
                        prompt = gr.Textbox(label="Prompt", value=defaults.prompt, lines=1)
                        negative_prompt = gr.Textbox(label="Negative prompt", value="", lines=1)
                        adapter_scale = gr.Slider(
                            0, 2, value=1.0, step=0.05, label="Adapter scale s", info="strength of both branches; 0 = the base model"
                        )
                        with gr.Row():
                            steps = gr.Slider(1, MAX_STEPS, value=defaults.steps, step=1, label="Steps", min_width=120)
                            guidance = gr.Slider(0, 15, value=defaults.guidance, step=0.5, label="Guidance", min_width=120)
                        with gr.Row():
                            seed = gr.Number(value=0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed", min_width=120)
                            randomize = gr.Button("Randomize seed", min_width=120)
                        with gr.Accordion("Advanced: other forms of the dial", open=False):
                            dial = gr.Radio([(label, key) for key, label in DIAL_MODES.items()], value="gamma", label="The dial")
                            with gr.Row():
                                w_pres = gr.Slider(0, 2, value=0.5, step=0.05, label="w_pres (identity)", min_width=150)
                                w_pers = gr.Slider(0, 2, value=0.5, step=0.05, label="w_pers (text)", min_width=150)
                            with gr.Row():
                                gamma_down = gr.Slider(0, 1, value=0.5, step=0.05, label="γ down", min_width=150)
                                gamma_mid = gr.Slider(0, 1, value=0.5, step=0.05, label="γ mid", min_width=150)
                                gamma_up = gr.Slider(0, 1, value=0.5, step=0.05, label="γ up", min_width=150)
                            with gr.Row():
                                gamma_start = gr.Slider(0, 1, value=1.0, step=0.05, label="γ first step", min_width=150)
                                gamma_end = gr.Slider(0, 1, value=0.0, step=0.05, label="γ last step", min_width=150)
                    with gr.Column(scale=2, min_width=300, elem_id="flexip-outputs"):  # the picture and its dial
                        result = gr.Image(
                            label="Result",
                            format="png",
                            type="pil",
                            height=420,
                            interactive=False,
                            buttons=["download", "fullscreen"],
                            elem_id="flexip-result",
                        )
                        gamma = gr.Slider(
                            0,
                            1,
                            value=DEFAULT_GAMMA,
                            step=0.01,
                            label="γ: preservation",
                            info="1 keeps the subject, 0 follows the text",
                            elem_id="flexip-gamma",
                        )
                        status = gr.Markdown(elem_id="flexip-status")
                        command = gr.Textbox(label="Copy as command", lines=2, interactive=False, buttons=["copy"], elem_id="flexip-command")
                        render_button = gr.Button("Render", variant="primary")
                        with gr.Row():
                            sweep_button = gr.Button(
                                f"Sweep strip: γ {SWEEP_GAMMAS[0]:g} … {SWEEP_GAMMAS[-1]:g} (one batched call, one noise)",
                                elem_id="flexip-sweep-button",
                            )
                            surface_button = gr.Button("Control surface: γ × scale")
                        strip = gr.Gallery(
                            label="γ sweep",
                            columns=len(SWEEP_GAMMAS),
                            height=200,
                            allow_preview=True,
                            format="png",
                            elem_id="flexip-strip",
                            elem_classes="pixelated",
                        )
                        surface = gr.Image(
                            label="Control surface (rows: scale, columns: γ)", format="png", type="pil", interactive=False, elem_classes="pixelated"
                        )
            with gr.Tab("Compare", id="compare"):
                gr.Markdown(
                    "FlexIP's γ sweep beside IP-Adapter's scale sweep: the same reference, prompt, steps, guidance, seed and noise "
                    "(the settings of the Create tab). The paper's claim: γ moves smoothly from the subject to the text, "
                    "IP-Adapter's scale shifts identity abruptly."
                )
                if baseline is None:
                    gr.Markdown(MISSING, elem_id="compare-missing")
                else:
                    gr.Markdown(f"Baseline: IP-Adapter `{baseline.path}`.")
                    compare_button = gr.Button("Compare", variant="primary")
                    flexip_strip = gr.Gallery(label="FlexIP: γ", columns=len(SWEEP_GAMMAS), height=200, format="png", elem_classes="pixelated")
                    baseline_strip = gr.Gallery(
                        label="IP-Adapter: scale", columns=len(SWEEP_GAMMAS), height=200, format="png", elem_classes="pixelated"
                    )
                    compare_status = gr.Markdown()
            with gr.Tab("Study", id="study"):
                study_tab(study, session.out_dir)

        #: the render controls, by the names the API gives them (`page_handler` reads them)
        controls = dict(prompt=prompt, negative_prompt=negative_prompt, gamma=gamma, adapter_scale=adapter_scale, steps=steps)
        controls.update(guidance=guidance, seed=seed, dial=dial, w_pres=w_pres, w_pers=w_pers)
        controls.update(gamma_down=gamma_down, gamma_mid=gamma_mid, gamma_up=gamma_up, gamma_start=gamma_start, gamma_end=gamma_end)

        # ---- handlers: page values → typed values → session -----------------------------------------
        def _use(chosen: References):
            session.embeds(chosen)  # encoded now, once; every render of these references reuses it
            found = photo_note(session.base, chosen.images)
            if found:
                gr.Warning(found)
            return chosen, list(chosen.images), f"**Note:** {found}" if found else ""

        @user_errors
        def use_uploads(files):
            """Check the uploaded reference images (type, bytes, pixels) and encode them once."""
            return _use(from_uploads(files))

        @user_errors
        def pick_example(event: gr.SelectData):
            return _use(from_example(session.base, list(example_subjects)[event.index]))

        @user_errors
        def first_example():
            return _use(from_example(session.base, next(iter(example_subjects))))

        @page_handler
        def render(refs: References, settings: RenderSettings):
            """Render one image at the page's settings (the reference encoding is reused)."""
            rendered = session.render(refs, settings)
            return rendered.images[0], _status(rendered, session), rendered.command

        @page_handler
        def sweep(refs: References, settings: RenderSettings):
            """γ 0 … 1 in one batched call from one noise."""
            rendered = session.sweep(refs, settings, SWEEP_GAMMAS)
            return list(zip(rendered.images, rendered.captions)), _status(rendered, session), rendered.command

        @page_handler
        def control_surface(refs: References, settings: RenderSettings):
            """The γ × adapter-scale grid, one batched call per scale."""
            rendered = session.surface(refs, settings, SWEEP_GAMMAS, SURFACE_SCALES)
            return rendered.images[0], _status(rendered, session)

        def new_seed():
            return random.randint(0, MAX_SEED)

        reference_outputs = [references, in_use, note]
        render_outputs = [result, status, command]
        render_inputs = dict(inputs=[references], inputs_kwargs=controls)

        def rerender(listener, name: str, **options):
            """Render again on `listener` (a control's event, or the success of a previous step): endpoint `name`."""
            return listener(render, outputs=render_outputs, api_name=name, api_visibility="undocumented", **render_inputs, **MODEL, **options)

        render_button.click(render, outputs=render_outputs, api_name="render", **render_inputs, **MODEL)
        uploaded = uploads.upload(use_uploads, [uploads], reference_outputs, api_name="use_uploads", **MODEL)
        rerender(uploaded.success, "render_after_upload")
        if example_subjects:  # the page opens on the first example subject, rendered
            picked = example_gallery.select(pick_example, None, reference_outputs, api_visibility="private", **MODEL)
            rerender(picked.success, "render_after_example")
            rerender(blocks.load(first_example, None, reference_outputs, api_visibility="private", **MODEL).success, "render_on_load")
        # the live dial: every move re-renders; while a render runs, only the latest value waits
        rerender(gamma.change, "render_on_gamma", trigger_mode="always_last", show_progress="hidden")
        sliders = {"scale": adapter_scale, "steps": steps, "guidance": guidance, "w_pres": w_pres, "w_pers": w_pers}
        sliders.update(gamma_down=gamma_down, gamma_mid=gamma_mid, gamma_up=gamma_up, gamma_start=gamma_start, gamma_end=gamma_end)
        for name, control in sliders.items():
            rerender(control.release, f"render_on_{name}", trigger_mode="always_last")
        for name, control in {"prompt": prompt, "negative_prompt": negative_prompt, "seed": seed}.items():
            rerender(control.submit, f"render_on_{name}")
        rerender(dial.change, "render_on_dial")
        rerender(randomize.click(new_seed, None, seed, api_visibility="private").success, "render_on_new_seed")
        sweep_button.click(sweep, outputs=[strip, status, command], api_name="sweep", **render_inputs, **MODEL)
        surface_button.click(control_surface, outputs=[surface, status], api_name="control_surface", **render_inputs, **MODEL)
        if baseline is not None:

            @page_handler
            def compare(refs: References, settings: RenderSettings):
                """FlexIP's γ sweep and IP-Adapter's scale sweep, same reference, prompt, settings and noise."""
                ours, theirs = session.sweep(refs, settings, SWEEP_GAMMAS), baseline.sweep(refs, settings, SWEEP_GAMMAS)
                timing = f"FlexIP sweep (one batched call) {ours.seconds:.2f} s; IP-Adapter ({len(SWEEP_GAMMAS)} calls) {theirs.seconds:.2f} s."
                return list(zip(ours.images, ours.captions)), list(zip(theirs.images, theirs.captions)), timing

            compare_button.click(compare, outputs=[flexip_strip, baseline_strip, compare_status], api_name="compare", **render_inputs, **MODEL)
    return blocks
