-- Agent calls in flight move to the shared awaited_replies table (shared/db/awaited.py).
INSERT INTO awaited_replies (message_id, operation, resource_id, detail, created)
    SELECT message_id, operation, resource_id, detail, created FROM agent_calls;
DROP TABLE agent_calls;
