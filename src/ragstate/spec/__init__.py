"""The desired state: YAML + profile + environment → a frozen, validated ``Spec``."""

from ragstate.spec.load import load_spec, spec_from_dict, spec_hash
from ragstate.spec.model import Spec

__all__ = ["Spec", "load_spec", "spec_from_dict", "spec_hash"]
