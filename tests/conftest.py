pytest_plugins = ["tests.fix_db", "tests.fix_connections", "tests.fix_mysql", "pytester"]
