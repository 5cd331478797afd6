-- sqlembed objects 010: deployment settings, frozen into a function at deploy time from sqlcmd variables.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
CREATE OR ALTER FUNCTION sqlembed.config()
RETURNS TABLE
AS RETURN
    SELECT CAST(N'$(SQLEMBED_URL)'            AS nvarchar(4000)) AS base_url,
           CAST(N'$(SQLEMBED_MODEL)'          AS nvarchar(200))  AS model,
           CAST(N'$(SQLEMBED_API_FORMAT)'     AS nvarchar(40))   AS api_format,
           CAST($(SQLEMBED_DIMENSIONS)        AS int)            AS dimensions,
           CAST(N'$(SQLEMBED_CREDENTIAL)'     AS nvarchar(4000)) AS credential_name,
           CAST(N'$(SQLEMBED_EXTERNAL_MODEL)' AS sysname)        AS external_model,
           CAST($(SQLEMBED_TIMEOUT)           AS smallint)       AS timeout_s,
           CAST($(SQLEMBED_RETRY_COUNT)       AS tinyint)        AS retry_count;
GO
