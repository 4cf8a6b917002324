"""The navigator's reads: one level of the namespace → workspace → directory tree with its experiment counts, and a
search of experiments by name, both answered by the database (GROUP BY, LIMIT) so a server of 100,000 experiments
never sends them all to the page (``Query.tree``, ``Query.search`` in http/graphql.py)."""
from __future__ import annotations

from ml_dash.server.storage.sql.protocol import ROWS, reads

# What a search looks in: an experiment's name, its folders and its readme (as the navigator's old in-page search).
SEARCHED = ("prefix", "directory", "workspace", "readme")


class ExperimentTree:
    """Mixed into ``SQLStorage`` beside ``ExperimentQueries`` (it uses that one's ``_scope`` and the dialect)."""

    @reads
    def experiment_tree(self, namespaces, namespace=None, workspace=None, directory="", limit=1000):
        """[(name, experiments)] of the level below: the namespaces in ``namespaces`` (None: all) without
        ``namespace``; its workspaces without ``workspace``; else the folders directly under ``directory`` ('': the
        workspace's top), counting every experiment of each one's subtree. Soft-deleted experiments are left out;
        names in code-point order, at most ``limit``."""
        if namespace is None:
            clauses, args = self._scope(namespaces, False)
            key = "namespace"
        elif workspace is None:
            clauses, args = self._scope(namespaces, False, namespace=namespace)
            key = "workspace"
        else:
            clauses, args = self._scope(namespaces, False, namespace=namespace, workspace=workspace)
            if directory:
                clauses.append("substr(directory, 1, ?) = ?")
                args += [len(directory) + 1, directory + "/"]
                rest = f"substr(directory, {len(directory) + 2:d})"  # a number, never the user's text
            else:
                clauses.append("directory <> ''")
                rest = "directory"
            key = self.DIALECT.first_segment(rest)
        sql = (f"SELECT {key}, COUNT(*) FROM experiments "
               f"WHERE {' AND '.join(clauses) or '1 = 1'} GROUP BY {key} ORDER BY {self.DIALECT.text(key)} LIMIT ?")
        return [(row[0], int(row[1])) for row in (yield ROWS, sql, (*args, limit))]

    @reads
    def search_experiments(self, namespaces, text, limit=50):
        """Experiments (not soft-deleted, in ``namespaces``) whose name, folders or readme contain ``text``, ignoring
        ASCII case; in namespace, workspace, directory, prefix order, at most ``limit``."""
        clauses, args = self._scope(namespaces, False)
        matches = []
        for column in SEARCHED:
            clause, values = self.DIALECT.contains_text(f"x.{column}", text.lower())
            matches.append(clause)
            args.extend(values)
        clauses.append(f"({' OR '.join(matches)})")
        return (yield from self._experiments(" AND ".join(clauses), (*args, limit),
                                             "ORDER BY namespace, workspace, directory, prefix LIMIT ?"))
