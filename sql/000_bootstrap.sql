-- sqlembed 000_bootstrap.sql: the schema and the migration journal. Safe to run any number of times.
-- Applied first by `sqlembed db deploy` (or at the top of the `sqlembed db render` script).
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
SET NOCOUNT ON;
GO
IF SCHEMA_ID(N'sqlembed') IS NULL
    EXEC (N'CREATE SCHEMA sqlembed AUTHORIZATION dbo;');
GO
-- One row per applied migration; a migration is never edited once applied (the checksum proves it).
IF OBJECT_ID(N'sqlembed.migrations', N'U') IS NULL
    CREATE TABLE sqlembed.migrations (
        name             nvarchar(200) NOT NULL CONSTRAINT PK_sqlembed_migrations PRIMARY KEY,
        checksum         char(64)      NOT NULL,
        sqlembed_version nvarchar(40)  NOT NULL,
        applied_at       datetime2(3)  NOT NULL CONSTRAINT DF_sqlembed_migrations_at DEFAULT SYSUTCDATETIME(),
        applied_by       sysname       NOT NULL CONSTRAINT DF_sqlembed_migrations_by DEFAULT SUSER_SNAME()
    );
GO
-- One row per deploy: what version and variables (never secrets) the objects were built with.
IF OBJECT_ID(N'sqlembed.deployments', N'U') IS NULL
    CREATE TABLE sqlembed.deployments (
        deployment_id    int IDENTITY(1, 1) NOT NULL CONSTRAINT PK_sqlembed_deployments PRIMARY KEY,
        sqlembed_version nvarchar(40)  NOT NULL,
        variables        nvarchar(max) NOT NULL,
        deployed_at      datetime2(3)  NOT NULL CONSTRAINT DF_sqlembed_deployments_at DEFAULT SYSUTCDATETIME(),
        deployed_by      sysname       NOT NULL CONSTRAINT DF_sqlembed_deployments_by DEFAULT SUSER_SNAME()
    );
GO
