/* Private to the store: the migration table generated from db/NNN_*.sql at build time. */
#ifndef SIPBX_STORE_MIGRATIONS_H
#define SIPBX_STORE_MIGRATIONS_H

struct migration {
    int version;      /* NNN of the file name; PRAGMA user_version after it ran */
    const char *name; /* file name, for messages */
    const char *sql;
};

extern const struct migration store_migrations[];
extern const int store_migration_count;

#endif
