-- sqlembed quickstart: run top to bottom in SSMS or sqlcmd, in a database where sqlembed is deployed
-- (samples/README.md). Uses the default model (all-minilm, VECTOR(384)) and the external model name
-- 'sqlembed'. Each step says what you should see.
SET NOCOUNT ON;
SET QUOTED_IDENTIFIER ON;
GO

-- 1. Is everything wired up? Every row should say 'ok'; a FAILED row carries its fix.
EXEC sqlembed.self_test;
GO

-- 2. One embedding, inline. Returns a VECTOR(384).
SELECT AI_GENERATE_EMBEDDINGS(N'waterproof hiking boots' USE MODEL sqlembed) AS embedding;
GO

-- 3. A small table to embed: the vector column starts empty.
DROP TABLE IF EXISTS dbo.sqlembed_sample_products;
CREATE TABLE dbo.sqlembed_sample_products (
    id          int           NOT NULL CONSTRAINT PK_sqlembed_sample_products PRIMARY KEY,
    name        nvarchar(100) NOT NULL,
    description nvarchar(max) NULL,
    embedding   VECTOR(384)   NULL
);
INSERT dbo.sqlembed_sample_products (id, name, description) VALUES
 (1,  N'Trail runner GTX',      N'Lightweight waterproof trail running shoe with a grippy outsole for muddy paths.'),
 (2,  N'Summit 45 backpack',    N'A 45 litre hiking backpack with a rain cover, hip belt pockets and a hydration sleeve.'),
 (3,  N'Alpine down jacket',    N'Warm, packable goose down jacket for cold mornings above the tree line.'),
 (4,  N'Storm shell',           N'Breathable rain jacket that keeps you dry in heavy downpours; taped seams.'),
 (5,  N'Camp stove duo',        N'Compact two-burner gas stove for cooking at the campsite.'),
 (6,  N'Titanium mug',          N'An ultralight 450 ml titanium mug that doubles as a cooking pot.'),
 (7,  N'Headlamp 400',          N'Rechargeable LED headlamp, 400 lumens, red night mode, USB-C charging.'),
 (8,  N'Trekking poles',        N'Carbon trekking poles that fold down to 38 cm; cork grips.'),
 (9,  N'Sleeping bag -5',       N'Mummy sleeping bag rated to minus five degrees Celsius.'),
 (10, N'Inflatable pad',        N'Insulated sleeping pad that inflates in ten breaths; R-value 4.2.'),
 (11, N'Water filter',          N'Squeeze water filter that removes bacteria and protozoa from streams.'),
 (12, N'Merino base layer',     N'Odour-resistant merino wool long-sleeve shirt for layering in winter.'),
 (13, N'Gaiters',               N'Knee-high gaiters that keep snow, mud and stones out of your boots.'),
 (14, N'Dome tent 2P',          N'Freestanding two-person tent with two doors and a full rain fly.'),
 (15, N'First aid kit',         N'Trail first aid kit with blister plasters, bandages and an emergency blanket.'),
 (16, N'Bouldering chalk',      N'Refillable chalk bag with a brush holder for climbing.'),
 (17, N'Kayak paddle',          N'Four-piece fibreglass touring paddle for sea kayaks.'),
 (18, N'GPS watch',             N'Multisport GPS watch with maps, heart rate and 20-day battery life.'),
 (19, N'Ski goggles',           N'Anti-fog ski goggles with interchangeable lenses for flat light.'),
 (20, N'Bike repair kit',       N'Multi-tool, tyre levers and patches for fixing a flat on the road.'),
 (21, N'Gift card',             NULL),   -- no text: skipped, never sent
 (22, N'Placeholder',           N'');    -- empty text: skipped too
GO

-- 4. Embed the table in pull mode. Expect rows_embedded = 20, rows_failed = 0, rows_skipped = 2.
EXEC sqlembed.embed_rows
    @table = N'dbo.sqlembed_sample_products', @key_column = N'id',
    @text_column = N'description', @vector_column = N'embedding';
GO

-- 5. Run it again: nothing changed, so nothing is re-embedded (rows_embedded = 0).
EXEC sqlembed.embed_rows N'dbo.sqlembed_sample_products', N'id', N'description', N'embedding';
-- Edit one description: only that row is embedded again (rows_embedded = 1).
UPDATE dbo.sqlembed_sample_products
SET description = description + N' Now in recycled materials.' WHERE id = 4;
EXEC sqlembed.embed_rows N'dbo.sqlembed_sample_products', N'id', N'description', N'embedding';
GO

-- 6. Search. 'something to keep me dry in the rain' should rank the Storm shell (4) first.
EXEC sqlembed.search
    @query = N'something to keep me dry in the rain',
    @table = N'dbo.sqlembed_sample_products', @key_column = N'id', @vector_column = N'embedding', @top = 3;
GO

-- 7. The same search by hand, joined back to the rows.
DECLARE @qv VECTOR(384) = AI_GENERATE_EMBEDDINGS(N'cooking gear for camping' USE MODEL sqlembed);
SELECT TOP (3) p.id, p.name, VECTOR_DISTANCE('cosine', p.embedding, @qv) AS distance
FROM dbo.sqlembed_sample_products AS p
WHERE p.embedding IS NOT NULL
ORDER BY distance;
GO

-- 8. Optional, for large tables: an approximate vector index. SQL Server 2025 needs
-- PREVIEW_FEATURES, a single-column INT clustered primary key and >= 100 vectors, and the table is
-- read-only while the index exists. This 20-row sample is too small: the procedure says so.
-- ALTER DATABASE SCOPED CONFIGURATION SET PREVIEW_FEATURES = ON;
DECLARE @err nvarchar(max);
EXEC sqlembed.create_vector_index @table = N'dbo.sqlembed_sample_products', @vector_column = N'embedding',
                                  @error = @err OUTPUT;
SELECT @err AS expected_error;
GO

-- 9. Clean up.
-- DROP TABLE dbo.sqlembed_sample_products;
