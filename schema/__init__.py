"""motcua.schema: the data model.

SQL migrations of the domain's query tables (every one a projection of folded entity states),
and the rules of each entity kind as pure functions: the dossier status machine
(:mod:`schema.status`), the working-day calendar (:mod:`schema.calendar`), codes and search
folding (:mod:`schema.codes`), units (:mod:`schema.units`), the pilot procedures
(:mod:`schema.procedures`), and the sync kinds that tie them together (:mod:`schema.kinds`).
"""

from schema.calendar import add_working_days, is_working_day, working_days_between
from schema.codes import (
    CitizenId,
    DossierCode,
    citizen_id_problem,
    fold_text,
    format_dossier_code,
    parse_citizen_id,
    parse_dossier_code,
)
from schema.db import MIGRATIONS, migrate
from schema.errors import CitizenIdProblem, InvalidCitizenId, InvalidDossierCode, SchemaError
from schema.fields import DOSSIER_FIELDS
from schema.kinds import ACCOUNT, DOSSIER, KINDS, PROCEDURE, UNIT
from schema.procedures import PILOT_PROCEDURES, DocumentComponent, ProcedureRecord
from schema.search import fts_query
from schema.status import ROLES, TERMINAL, TRANSITIONS, Status, check_transition, next_statuses
from schema.units import UnitRecord, all_provinces, province_units

__all__ = [
    "ACCOUNT",
    "DOSSIER",
    "DOSSIER_FIELDS",
    "KINDS",
    "MIGRATIONS",
    "PILOT_PROCEDURES",
    "PROCEDURE",
    "ROLES",
    "TERMINAL",
    "TRANSITIONS",
    "UNIT",
    "CitizenId",
    "CitizenIdProblem",
    "DocumentComponent",
    "DossierCode",
    "InvalidCitizenId",
    "InvalidDossierCode",
    "ProcedureRecord",
    "SchemaError",
    "Status",
    "UnitRecord",
    "add_working_days",
    "all_provinces",
    "check_transition",
    "citizen_id_problem",
    "fold_text",
    "format_dossier_code",
    "fts_query",
    "is_working_day",
    "migrate",
    "next_statuses",
    "parse_citizen_id",
    "parse_dossier_code",
    "province_units",
    "working_days_between",
]
