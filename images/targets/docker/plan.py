"""The docker target's plan: the image plan, which the OCI target shares (images/image_plan.py)."""

from __future__ import annotations

from ...image_plan import BuildNetworkPlan, BuildPlan, ImageOptions, make_plan

__all__ = ["BuildNetworkPlan", "BuildPlan", "ImageOptions", "make_plan"]
