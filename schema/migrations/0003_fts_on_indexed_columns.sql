-- The search index holds a dossier's code, applicant name and citizen id (folded). It was
-- dropped and rebuilt whenever the wider `search` text changed, which also holds the phone and
-- the portal code: two of a dossier's ten ops rewrote its FTS row for nothing, most of the
-- index work of a merge at the city (issue 10). Drop the row only when an indexed column
-- changes; the projector adds the new one (schema/projection.py).

DROP TRIGGER dossiers_search_changed;

CREATE TRIGGER dossiers_indexed_changed
AFTER UPDATE OF code, applicant_name, applicant_citizen_id ON dossiers
WHEN (old.code, old.applicant_name, old.applicant_citizen_id)
    IS NOT (new.code, new.applicant_name, new.applicant_citizen_id)
BEGIN
    DELETE FROM dossier_fts WHERE rowid = old.rid;
END;
