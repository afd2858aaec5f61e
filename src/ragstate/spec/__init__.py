"""The desired state: YAML + profile + environment → a frozen, validated ``Spec``."""

from ragstate.spec.load import load_spec, spec_from_dict, spec_hash, table_source_from
from ragstate.spec.model import Spec, TableSourceSpec

__all__ = ["Spec", "TableSourceSpec", "load_spec", "spec_from_dict", "spec_hash", "table_source_from"]
