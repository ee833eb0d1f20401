"""FlexIP Studio: the local web app (Gradio) over the library, a thin shell like the CLI.

One module per concept, data flowing one way (references and settings → session → page):

    references.py   the subject's reference images: upload checks (type, bytes, pixels), examples, the preset note
    settings.py     what one render asks for (prompt, the dial γ in its forms, scale, steps, seed), parsed once;
                    its `flexip generate` command line and the PNG text chunks a download carries
    session.py      the loaded pipeline: references encoded once and cached, one generation at a time
    compare.py      the IP-Adapter baseline on the same base: its scale sweep beside FlexIP's γ sweep
    server.py       how the app is served: 127.0.0.1, a bounded queue, upload limits, served files
    studio.py       the page: Create, Compare and Study tabs
    study/          the paper's user study: create, store (SQLite, WAL), page, results (Wilson), export (CSV)

Only `studio.py`, `server.py` and `study/page.py` import gradio; everything else is plain Python over the
library's public API, so it is tested without a server.
"""
