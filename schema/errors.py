"""Typed errors of the data model. Each carries an HTTP status for the one error handler::

    SchemaError                 base, 400: the input breaks a rule of the data model
    ├── InvalidDossierCode      not <unit>-<yymmdd>-<nnnn>
    └── InvalidCitizenId        not a CCCD; ``problem`` (a CitizenIdProblem) says why

Rule violations inside the fold are not exceptions of this module: reducers raise
:class:`sync.fold.Rejected`, and the fold keeps the op as a conflict.
"""

from __future__ import annotations

from enum import Enum


class CitizenIdProblem(Enum):
    """Why a string is not a CCCD; the value is the clerk-readable reason."""

    WRONG_LENGTH = "a citizen id (CCCD) has exactly 12 digits"
    NOT_DIGITS = "a citizen id (CCCD) contains digits only"
    UNKNOWN_PROVINCE = "the first 3 digits are not a province code of birth registration"
    BORN_IN_FUTURE = "the year of birth in the citizen id is in the future"


class SchemaError(ValueError):
    status = 400
    code = "invalid_input"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidDossierCode(SchemaError):
    code = "invalid_dossier_code"


class InvalidCitizenId(SchemaError):
    code = "invalid_citizen_id"

    def __init__(self, problem: CitizenIdProblem) -> None:
        super().__init__(problem.value)
        self.problem = problem
