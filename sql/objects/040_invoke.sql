-- sqlembed objects 040: the one place that calls the service, with the shared error contract:
-- TRY/CATCH for transport failures (no HTTP exchange: an error is raised, contract A2), then the
-- return value and $.response.status.http.code. Returns 0 on 2xx; otherwise non-zero and @error
-- holds {"source","code","message"}. Existing data is never touched here.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
CREATE OR ALTER PROCEDURE sqlembed.invoke
    @path     nvarchar(2000),
    @method   nvarchar(6) = N'POST',
    @payload  nvarchar(max) = NULL,
    @response nvarchar(max) = NULL OUTPUT,
    @error    nvarchar(max) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    DECLARE @url nvarchar(4000), @cred nvarchar(4000), @timeout smallint, @retries tinyint, @rc int, @status int;
    SELECT @url = base_url + @path, @cred = credential_name, @timeout = timeout_s, @retries = retry_count
    FROM sqlembed.config();
    SET @response = NULL;
    SET @error = NULL;
    BEGIN TRY
        IF EXISTS (SELECT 1 FROM sys.database_scoped_credentials WHERE name = @cred)
            EXEC @rc = sys.sp_invoke_external_rest_endpoint
                @url = @url, @method = @method, @payload = @payload, @timeout = @timeout,
                @credential = @cred, @retry_count = @retries, @response = @response OUTPUT;
        ELSE
            EXEC @rc = sys.sp_invoke_external_rest_endpoint
                @url = @url, @method = @method, @payload = @payload, @timeout = @timeout,
                @retry_count = @retries, @response = @response OUTPUT;
    END TRY
    BEGIN CATCH
        SET @error = JSON_OBJECT('source': 'sp_invoke_external_rest_endpoint', 'code': ERROR_NUMBER(),
                                 'message': ERROR_MESSAGE());
        INSERT sqlembed.error_log (source, code, message) VALUES (N'sqlembed.invoke ' + @path, ERROR_NUMBER(), ERROR_MESSAGE());
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
        SET @error = JSON_OBJECT('source': 'sqlembed service', 'code': COALESCE(@status, @rc), 'message': @message);
        INSERT sqlembed.error_log (source, code, message) VALUES (N'sqlembed.invoke ' + @path, COALESCE(@status, @rc), @message);
        RETURN COALESCE(NULLIF(@rc, 0), @status, 1);
    END;
    RETURN 0;
END;
GO
