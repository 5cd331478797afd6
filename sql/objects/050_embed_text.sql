-- sqlembed objects 050: one text -> one VECTOR($(SQLEMBED_DIMENSIONS)), through the Ollama route.
--   DECLARE @v VECTOR($(SQLEMBED_DIMENSIONS)), @err nvarchar(max), @rc int;
--   EXEC @rc = sqlembed.embed_text @text = N'hello', @embedding = @v OUTPUT, @error = @err OUTPUT;
SET ANSI_NULLS ON;
SET QUOTED_IDENTIFIER ON;
GO
CREATE OR ALTER PROCEDURE sqlembed.embed_text
    @text      nvarchar(max),
    @embedding VECTOR($(SQLEMBED_DIMENSIONS)) = NULL OUTPUT,
    @error     nvarchar(max) = NULL OUTPUT
AS
BEGIN
    SET NOCOUNT ON;
    SET @embedding = NULL;
    SET @error = NULL;
    IF @text IS NULL OR DATALENGTH(@text) = 0
    BEGIN
        SET @error = JSON_OBJECT('source': 'sqlembed.embed_text', 'code': 400, 'message': '@text is NULL or empty');
        RETURN 400;
    END;
    DECLARE @payload nvarchar(max), @response nvarchar(max), @rc int, @dims int;
    SELECT @payload = JSON_OBJECT('model': model, 'input': @text, 'dimensions': dimensions), @dims = dimensions
    FROM sqlembed.config();
    EXEC @rc = sqlembed.invoke @path = N'/api/embed', @payload = @payload,
                               @response = @response OUTPUT, @error = @error OUTPUT;
    IF @rc <> 0
        RETURN @rc;
    SET @embedding = TRY_CAST(JSON_QUERY(@response, '$.result.embeddings[0]') AS VECTOR($(SQLEMBED_DIMENSIONS)));
    IF @embedding IS NULL
    BEGIN
        SET @error = JSON_OBJECT('source': 'sqlembed.embed_text', 'code': 502,
            'message': CONCAT('the service returned no vector of ', @dims, ' dimensions'));
        RETURN 502;
    END;
    RETURN 0;
END;
GO
