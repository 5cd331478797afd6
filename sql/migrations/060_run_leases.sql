-- sqlembed migration 060: who is embedding a destination right now, as an expiring lease.
-- embed_rows used a session-owned applock, which only sp_releaseapplock or the session's logout
-- releases: a client timeout (an attention skips CATCH) on a pooled connection left it held for as
-- long as the pool kept that connection, and every other caller got "already running". A lease row
-- expires on its own (renewed before each request to the service), so a run that died blocks
-- others for at most one lease; the same session may take its own lease back at once.
-- Keyed by a hash of the destination (index key size limit). Runs once; never edit after release.
CREATE TABLE sqlembed.run_leases (
    destination nvarchar(800)    NOT NULL,   -- as in sqlembed.embedding_state
    lease_key   AS CAST(HASHBYTES('SHA2_256', CAST(destination AS nvarchar(max))) AS binary(32)) PERSISTED NOT NULL,
    session_id  int              NOT NULL,
    token       uniqueidentifier NOT NULL,
    taken_by    sysname          NOT NULL CONSTRAINT DF_sqlembed_run_leases_by DEFAULT SUSER_SNAME(),
    expires_at  datetime2(3)     NOT NULL,
    CONSTRAINT PK_sqlembed_run_leases PRIMARY KEY CLUSTERED (lease_key)
);
GO
