from sqlembed.cli import main

raise SystemExit(main())
