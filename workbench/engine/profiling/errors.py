"""Profiling errors: bad options get a message for the user; a cancelled run says so."""

from __future__ import annotations

from workbench.engine.errors import WorkbenchError


class ProfileError(WorkbenchError):
    """A model cannot be profiled as asked: the message names the option and what to do."""


class ProfileCancelled(ProfileError):
    """The user stopped the profile before it finished; nothing was written."""
