"""ragstate: a desired-state reconciler for RAG data.

Declare in a spec which pipelines you serve; ragstate observes what is stored, plans
the least work that removes the drift, applies it in crash-safe batches and verifies.

    from ragstate import Project
    with Project.from_file("ragstate.yaml") as project:
        plan = project.plan()
        if not plan.in_sync:
            project.apply(plan)
"""

from ragstate.apply.record import RunRecord
from ragstate.errors import RagstateError, TerminalError, TransientError
from ragstate.plan.model import Plan
from ragstate.project import Project
from ragstate.reconcile.reports import StatusReport, VerifyReport
from ragstate.spec import Spec, load_spec, spec_from_dict
from ragstate.version import __version__

__all__ = [
    "Plan",
    "Project",
    "RagstateError",
    "RunRecord",
    "Spec",
    "StatusReport",
    "TerminalError",
    "TransientError",
    "VerifyReport",
    "__version__",
    "load_spec",
    "spec_from_dict",
]
