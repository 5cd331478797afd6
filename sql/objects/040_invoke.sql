-- sqlembed objects 040: the one place that calls the service, and the one place that logs.
--
-- Least privilege (sql/README.md, "Permission model"): no member of sqlembed_user may call
-- sp_invoke_external_rest_endpoint or use the credential that carries the API key; with those
-- rights a member could send any HTTPS request from the database server (exfiltration, SSRF) or
-- post /v1/jobs with the key around submit_job's checks. sqlembed.invoke alone holds them, by
-- running WITH EXECUTE AS the loginless user sqlembed_invoker, which holds exactly
-- EXECUTE ANY EXTERNAL ENDPOINT and REFERENCES on the credential (objects/900_grants.sql) and
-- nothing else. Not module signing: Learn (ADD SIGNATURE, "Countersignatures") says a signature is
-- lost when the signed module executes another module, and sp_invoke_external_rest_endpoint is one
-- (it calls sp_invoke_external_rest_endpoint_internal), so a certificate user's rights would not
-- reach its permission check. Not EXECUTE AS OWNER: dbo holds every right in the database, and
-- impersonating dbo fails (Msg 15517) where the owner's login is missing, as after a restore on
-- another server. sqlembed_user has no EXECUTE on invoke: it is reached only through the ownership
-- chain of the procedures that validate first, and it accepts only the service's own paths.
--
-- sqlembed.invoke writes nothing and runs with XACT_ABORT OFF: when no HTTP exchange happens
-- (DNS, TLS, refused, timeout) sp_invoke_external_rest_endpoint raises an error (contract A2),
-- which invoke catches; with XACT_ABORT OFF that error never dooms a transaction the caller has
-- open, so an outage is a non-zero return and an @error, not a lost transaction. Otherwise it
-- reads the return value and $.response.status.http.code: 0 on 2xx, else non-zero and @error
-- {"source","code","message"}. The credential and @retry_count are deploy-time facts
-- (sqlembed.config()), never read from sys.database_scoped_credentials at call time.
--
-- sqlembed.log_error is the only exception to the transaction contract (sql/README.md): it writes
-- one row into the caller's context when that is still possible (XACT_STATE() <> -1, since a write
-- in a doomed transaction is Msg 3930) and never raises, so logging can never fail a call.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
-- Created before the procedure that names it (EXECUTE AS checks the user exists); its rights are
-- granted (and any others revoked) in objects/900_grants.sql.
IF DATABASE_PRINCIPAL_ID(N'sqlembed_invoker') IS NULL
    CREATE USER sqlembed_invoker WITHOUT LOGIN WITH DEFAULT_SCHEMA = sqlembed;
GO
CREATE OR ALTER PROCEDURE sqlembed.log_error
    @source  nvarchar(128),
    @code    int,
    @message nvarchar(4000),
    @detail  nvarchar(max) = NULL
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT OFF;
    SET IMPLICIT_TRANSACTIONS OFF;
    IF XACT_STATE() = -1
        RETURN 0;
    BEGIN TRY
        INSERT sqlembed.error_log (source, code, message, detail) VALUES (@source, @code, @message, @detail);
    END TRY
    BEGIN CATCH
        RETURN 1;  -- the log is advisory; the caller's own error contract reports the failure
    END CATCH;
    RETURN 0;
END;
GO
CREATE OR ALTER PROCEDURE sqlembed.invoke
    @path     nvarchar(2000),
    @method   nvarchar(6) = N'POST',
    @payload  nvarchar(max) = NULL,
    @response nvarchar(max) = NULL OUTPUT,
    @error    nvarchar(max) = NULL OUTPUT
WITH EXECUTE AS 'sqlembed_invoker'
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT OFF;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET @response = NULL;
    SET @error = NULL;
    -- Only the service's own routes, appended to the deploy-time base URL: no '@' (user info would
    -- change the host), no '.' or '%' (no dot segments, no escapes), no query string, no scheme.
    -- BIN2: under a dictionary collation the range A-Z also admits accented letters.
    IF @path IS NULL OR @path NOT LIKE N'/%' OR @path COLLATE Latin1_General_BIN2 LIKE N'%[^A-Za-z0-9/_-]%'
       OR @path LIKE N'%//%'
       OR @method IS NULL OR @method NOT IN (N'GET', N'POST', N'DELETE')
    BEGIN
        SET @error = JSON_OBJECT('source': 'sqlembed.invoke', 'code': 400, 'message': 'invalid path or method');
        RETURN 400;
    END;
    DECLARE @url nvarchar(4000), @cred sysname, @use_cred bit, @rest_retry bit, @timeout smallint,
            @retries tinyint, @rc int, @status int;
    SELECT @url = base_url + @path, @cred = credential_name, @use_cred = use_credential, @rest_retry = rest_retry_count,
           @timeout = timeout_s, @retries = retry_count
    FROM sqlembed.config();
    BEGIN TRY
        IF @use_cred = 1 AND @rest_retry = 1
            EXEC @rc = sys.sp_invoke_external_rest_endpoint
                @url = @url, @method = @method, @payload = @payload, @timeout = @timeout,
                @credential = @cred, @retry_count = @retries, @response = @response OUTPUT;
        ELSE IF @use_cred = 1
            EXEC @rc = sys.sp_invoke_external_rest_endpoint
                @url = @url, @method = @method, @payload = @payload, @timeout = @timeout,
                @credential = @cred, @response = @response OUTPUT;
        ELSE IF @rest_retry = 1
            EXEC @rc = sys.sp_invoke_external_rest_endpoint
                @url = @url, @method = @method, @payload = @payload, @timeout = @timeout,
                @retry_count = @retries, @response = @response OUTPUT;
        ELSE
            EXEC @rc = sys.sp_invoke_external_rest_endpoint
                @url = @url, @method = @method, @payload = @payload, @timeout = @timeout,
                @response = @response OUTPUT;
    END TRY
    BEGIN CATCH
        SET @error = JSON_OBJECT('source': 'sp_invoke_external_rest_endpoint', 'code': ERROR_NUMBER(),
                                 'message': ERROR_MESSAGE());
        RETURN CASE WHEN ERROR_NUMBER() = 0 THEN 1 ELSE ERROR_NUMBER() END;
    END CATCH;
    SET @status = TRY_CAST(JSON_VALUE(@response, '$.response.status.http.code') AS int);
    IF @rc <> 0 OR @status IS NULL OR @status NOT BETWEEN 200 AND 299
    BEGIN
        -- Ollama errors are {"error": "..."}; OpenAI-shaped ones are {"error": {"message": ...}}.
        DECLARE @message nvarchar(4000) = COALESCE(JSON_VALUE(@response, '$.result.error.message'),
                                                   JSON_VALUE(@response, '$.result.error'),
                                                   JSON_VALUE(@response, '$.response.status.http.description'),
                                                   N'no response');
        IF COALESCE(@status, @rc) = 401
            SET @message = CONCAT(@message, N' (the service refused the API key: deploy again with ',
                                  N'SQLEMBED_API_KEY set to one of its keys)');
        SET @error = JSON_OBJECT('source': 'sqlembed service', 'code': COALESCE(@status, @rc), 'message': @message);
        RETURN COALESCE(NULLIF(@rc, 0), @status, 1);
    END;
    RETURN 0;
END;
GO
