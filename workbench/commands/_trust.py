"""`--trust-this-file`: its help text and warning, shared by the checkpoint verbs (no PyTorch)."""

from __future__ import annotations

TRUST_HELP = (
    "open the file even if it needs code to unpickle: a separate Python process loads it and "
    "hands back only tensors. Only for files you made or whose source you trust"
)


def trust_warning(path: str) -> str:
    from workbench.engine.safe_text import safe_text

    return (
        f"warning: --trust-this-file: if {safe_text(path)} needs code to load, a separate Python process "
        "runs that code with your permissions; only its tensors are kept."
    )
