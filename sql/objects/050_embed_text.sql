-- sqlembed objects 050: one text -> one VECTOR($(SQLEMBED_DIMENSIONS)), through the Ollama route.
--   DECLARE @v VECTOR($(SQLEMBED_DIMENSIONS)), @err nvarchar(max), @rc int;
--   EXEC @rc = sqlembed.embed_text @text = N'hello', @embedding = @v OUTPUT, @error = @err OUTPUT;
-- Reads nothing but the configuration and writes nothing but the error log, so it works the same
-- inside a caller's transaction and outside one; a failure never dooms the caller's transaction
-- (XACT_ABORT OFF, even under a caller's SET XACT_ABORT ON).
-- @input_type ('query' or 'passage') chooses the model's prompt where its folder declares prompts.
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
CREATE OR ALTER PROCEDURE sqlembed.embed_text
    @text       nvarchar(max),
    @embedding  VECTOR($(SQLEMBED_DIMENSIONS)$(SQLEMBED_VECTOR_TYPE_SUFFIX)) = NULL OUTPUT,
    @error      nvarchar(max) = NULL OUTPUT,
    @input_type varchar(10) = NULL
AS
BEGIN
    SET NOCOUNT ON;
    SET XACT_ABORT OFF;
    SET IMPLICIT_TRANSACTIONS OFF;
    SET @embedding = NULL;
    SET @error = NULL;
    DECLARE @problem nvarchar(200) = CASE
        WHEN @text IS NULL OR DATALENGTH(@text) = 0 THEN N'@text is NULL or empty'
        WHEN @input_type IS NOT NULL AND @input_type NOT IN ('query', 'passage') THEN N'@input_type must be query, passage or NULL'
    END;
    IF @problem IS NOT NULL
    BEGIN
        SET @error = JSON_OBJECT('source': 'sqlembed.embed_text', 'code': 400, 'message': @problem);
        RETURN 400;
    END;
    DECLARE @payload nvarchar(max), @response nvarchar(max), @rc int, @dims int;
    SELECT @payload = JSON_OBJECT('model': model, 'input': @text, 'dimensions': dimensions,
                                  'input_type': @input_type ABSENT ON NULL),
           @dims = dimensions
    FROM sqlembed.config();
    EXEC @rc = sqlembed.invoke @path = N'/api/embed', @payload = @payload,
                               @response = @response OUTPUT, @error = @error OUTPUT;
    IF @rc = 0
    BEGIN
        SET @embedding = TRY_CAST(JSON_QUERY(@response, '$.result.embeddings[0]')
                                  AS VECTOR($(SQLEMBED_DIMENSIONS)$(SQLEMBED_VECTOR_TYPE_SUFFIX)));
        IF @embedding IS NULL
        BEGIN
            SET @rc = 502;
            SET @error = JSON_OBJECT('source': 'sqlembed.embed_text', 'code': 502,
                'message': CONCAT('the service returned no vector of ', @dims, ' dimensions'));
        END;
    END;
    IF @rc <> 0
    BEGIN
        DECLARE @message nvarchar(4000) = LEFT(JSON_VALUE(@error, '$.message'), 4000);
        EXEC sqlembed.log_error @source = N'sqlembed.embed_text', @code = @rc, @message = @message;
    END;
    RETURN @rc;
END;
GO
