-- Who really sent each message (the AMQP user_id RabbitMQ checked), and whether its text was
-- escaped to be stored: PostgreSQL text and jsonb refuse U+0000, and the audit drops nothing,
-- so a message holding one is stored with '%' -> '%25' and U+0000 -> '%00' in every string and
-- returned unescaped.
ALTER TABLE events ADD COLUMN broker_user text;
ALTER TABLE events ADD COLUMN nul_escaped boolean NOT NULL DEFAULT false;
ALTER TABLE events_archive ADD COLUMN broker_user text;
ALTER TABLE events_archive ADD COLUMN nul_escaped boolean NOT NULL DEFAULT false;
