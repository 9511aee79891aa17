"""The Assets target: REST client, schema resolution and bootstrap, object reads and writes.

::

    client.py   AssetsClient (Cloud and Data Center), auth, workspace discovery, AQL paging
    models.py   frozen values parsed from Assets JSON (schemas, types, attributes, objects)
    values.py   normalize / decode / encode: one normalisation per attribute kind
    aql.py      aql_quote and the few AQL expressions we build
    requirements.py  what the mapping needs (TypeRequirement...), plan and apply reports
    schema.py   resolve_schema, plan_schema, apply_schema
    objects.py  bulk read by type, lookup by key, create (never duplicated), update, delete
    users.py    email -> Atlassian accountId, exact matches only, cached
"""

from __future__ import annotations

from importer.assets.aql import aql_quote
from importer.assets.client import AssetsClient, BasicAuth, BearerAuth, discover_workspace
from importer.assets.models import (
    AssetsAttribute,
    AssetsObject,
    AssetsObjectType,
    AssetsSchema,
    AssetsStatus,
    NormValue,
    ResolvedSchema,
    ResolvedType,
)
from importer.assets.objects import AssetsObjects, ReadResult
from importer.assets.schema import (
    AttributeRequirement,
    SchemaApplyResult,
    SchemaPlan,
    TypeRequirement,
    apply_schema,
    plan_schema,
    resolve_schema,
)
from importer.assets.users import AccountResolver
from importer.assets.values import decode, encode, normalize

__all__ = [
    "AccountResolver",
    "AssetsAttribute",
    "AssetsClient",
    "AssetsObject",
    "AssetsObjectType",
    "AssetsObjects",
    "AssetsSchema",
    "AssetsStatus",
    "AttributeRequirement",
    "BasicAuth",
    "BearerAuth",
    "NormValue",
    "ReadResult",
    "ResolvedSchema",
    "ResolvedType",
    "SchemaApplyResult",
    "SchemaPlan",
    "TypeRequirement",
    "apply_schema",
    "aql_quote",
    "decode",
    "discover_workspace",
    "encode",
    "normalize",
    "plan_schema",
    "resolve_schema",
]
