from redpacket.cli import main

raise SystemExit(main())
