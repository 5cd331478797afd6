-- sqlembed migration 010: bulk job bookkeeping and the error log. Runs once; never edit after release.
CREATE TABLE sqlembed.jobs (
    job_id        nvarchar(64)  NOT NULL CONSTRAINT PK_sqlembed_jobs PRIMARY KEY,
    source_table  nvarchar(300) NOT NULL,
    target_table  nvarchar(300) NULL,
    state         nvarchar(20)  NOT NULL,
    submitted_at  datetime2(3)  NOT NULL CONSTRAINT DF_sqlembed_jobs_submitted DEFAULT SYSUTCDATETIME(),
    submitted_by  sysname       NOT NULL CONSTRAINT DF_sqlembed_jobs_by DEFAULT SUSER_SNAME(),
    last_status   nvarchar(max) NULL,
    updated_at    datetime2(3)  NULL
);
GO
CREATE TABLE sqlembed.error_log (
    error_id   bigint IDENTITY(1, 1) NOT NULL CONSTRAINT PK_sqlembed_error_log PRIMARY KEY,
    logged_at  datetime2(3)  NOT NULL CONSTRAINT DF_sqlembed_error_log_at DEFAULT SYSUTCDATETIME(),
    logged_by  sysname       NOT NULL CONSTRAINT DF_sqlembed_error_log_by DEFAULT SUSER_SNAME(),
    source     nvarchar(128) NOT NULL,
    code       int           NULL,
    message    nvarchar(4000) NULL,
    detail     nvarchar(max) NULL
);
GO
