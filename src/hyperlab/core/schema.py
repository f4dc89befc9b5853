"""JSON Schemas for topology, lab and hosts files, for editors (yaml-language-server) and the docs
(pure: `lab schema` writes them)."""

from __future__ import annotations

import json

from pydantic import BaseModel

from hyperlab.core.inventory import Inventory
from hyperlab.core.model import Lab, Topology

SCHEMAS: dict[str, type[BaseModel]] = {"topology": Topology, "lab": Lab, "hosts": Inventory}


def schema_text(model: type[BaseModel]) -> str:
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
