-- The two tables the grant touches, and order 7 (MariaDB / MySQL).
CREATE TABLE orders (id int PRIMARY KEY);
CREATE TABLE red_packets (id int AUTO_INCREMENT PRIMARY KEY, order_id int NOT NULL);
INSERT INTO orders VALUES (7);
