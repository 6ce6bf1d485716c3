"""The coordinator's pages, as one router: the worklist, the case page and the case page's forms."""

from __future__ import annotations

from fastapi import APIRouter

from discharge_bridge.ui import case, case_forms, worklist

router = APIRouter(include_in_schema=False)
router.include_router(worklist.router)
router.include_router(case.router)
router.include_router(case_forms.router)
