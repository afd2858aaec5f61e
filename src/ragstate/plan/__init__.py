"""Plans: the desired state, the pure ``diff``, the plan value and how it is shown."""

from ragstate.plan.model import DRIFT_CLASSES, Estimate, KindPlan, Plan

__all__ = ["DRIFT_CLASSES", "Estimate", "KindPlan", "Plan"]
