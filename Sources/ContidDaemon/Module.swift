// ContidDaemon module
