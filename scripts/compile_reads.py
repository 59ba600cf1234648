"""Write snapstore/store/compiled_reads.py: the read side's queries as SQLite text, so the
command line's reading verbs run them with the sqlite3 module alone.  Run it after
changing a query in snapstore/store/queries.py or a table in snapstore/store/schema.py."""

from pathlib import Path

from snapstore.store import queries

TARGET = Path(queries.__file__).with_name("compiled_reads.py")

if __name__ == "__main__":
    TARGET.write_text(queries.compiled_module())
    print(f"wrote {TARGET}")
