-- Saga steps in flight: their awaited replies move to the shared awaited_replies table.
INSERT INTO awaited_replies (message_id, operation, resource_id)
    SELECT awaiting, kind, resource_id FROM sagas
    WHERE awaiting IS NOT NULL AND state IN ('running', 'compensating');
UPDATE sagas SET awaiting = NULL;
