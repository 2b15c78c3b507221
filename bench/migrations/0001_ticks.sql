CREATE TABLE ticks (n int NOT NULL);
