#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Record type numbers and the names auditd prints for them (libaudit's table,
// linux/audit.h), plus contid's own types in the private user-space range.

public struct AuditRecordType: RawRepresentable, Hashable, Sendable, Comparable, CustomStringConvertible {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let user = AuditRecordType(rawValue: 1005)
    public static let login = AuditRecordType(rawValue: 1006)
    public static let userAuth = AuditRecordType(rawValue: 1100)
    public static let userAcct = AuditRecordType(rawValue: 1101)
    public static let userAVC = AuditRecordType(rawValue: 1107)
    public static let userLogin = AuditRecordType(rawValue: 1112)
    public static let userCmd = AuditRecordType(rawValue: 1123)
    public static let userTTY = AuditRecordType(rawValue: 1124)
    public static let serviceStart = AuditRecordType(rawValue: 1130)
    public static let daemonStart = AuditRecordType(rawValue: 1200)
    public static let daemonEnd = AuditRecordType(rawValue: 1201)
    public static let daemonAbort = AuditRecordType(rawValue: 1202)
    public static let syscall = AuditRecordType(rawValue: 1300)
    public static let path = AuditRecordType(rawValue: 1302)
    public static let configChange = AuditRecordType(rawValue: 1305)
    public static let sockaddr = AuditRecordType(rawValue: 1306)
    public static let cwd = AuditRecordType(rawValue: 1307)
    public static let execve = AuditRecordType(rawValue: 1309)
    public static let objPID = AuditRecordType(rawValue: 1318)
    public static let eoe = AuditRecordType(rawValue: 1320)
    public static let bprmFcaps = AuditRecordType(rawValue: 1321)
    public static let netfilterPkt = AuditRecordType(rawValue: 1324)
    public static let proctitle = AuditRecordType(rawValue: 1327)
    public static let replace = AuditRecordType(rawValue: 1329)
    public static let eventListener = AuditRecordType(rawValue: 1335)
    public static let avc = AuditRecordType(rawValue: 1400)
    public static let kernel = AuditRecordType(rawValue: 2000)
    public static let containerOp = AuditRecordType(rawValue: 2900)
    public static let containerID = AuditRecordType(rawValue: 2901)
    public static let setCapContID = AuditRecordType(rawValue: 2902)
    public static let nsInfo = AuditRecordType(rawValue: 2903)
    public static let nsCreate = AuditRecordType(rawValue: 2904)
    public static let nsChange = AuditRecordType(rawValue: 2905)
    public static let nsDestroy = AuditRecordType(rawValue: 2906)
    public static let containerLost = AuditRecordType(rawValue: 2907)
    public static let containerInfo = AuditRecordType(rawValue: 2908)

    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }

    /// The name auditd writes: `SYSCALL`, or `UNKNOWN[1234]` for numbers it has no name for.
    public var name: String {
        if let n = AuditRecordTypeTable.shared.names[rawValue] { return n }
        return "UNKNOWN[\(rawValue)]"
    }
    public var description: String { name }

    /// Looks a name up: `SYSCALL`, `UNKNOWN[1234]` or a plain number.
    public init?(name: some StringProtocol) {
        if let v = AuditRecordTypeTable.shared.numbers[String(name)] { self.rawValue = v; return }
        var s = Substring(name)
        if s.hasPrefix("UNKNOWN["), s.hasSuffix("]") { s = s.dropFirst(8).dropLast() }
        guard let v = UInt16(s) else { return nil }
        self.rawValue = v
    }

    // MARK: classes (the one table: assembly, annotation, the host log and the daemon ask here)

    /// Types that always make a whole event on their own: user-space messages
    /// (USER, 1100-1199, 2100-2999) and auditd's DAEMON_* records (1200-1299). CONTAINER_ID
    /// is the exception: an auxiliary record that joins the event it annotates.
    public var isStandalone: Bool {
        let v = rawValue
        if v == Self.containerID.rawValue { return false }
        return v == 1005 || (1100...1299).contains(v) || (2100...2999).contains(v)
    }

    /// auditd's DAEMON_* records (1200-1299) carry auditd's own serial counter, not the kernel's.
    public var isDaemonRecord: Bool { (1200...1299).contains(rawValue) }

    /// Types a user-space program sends through the kernel (USER, 1100-1199, 2100-2999),
    /// other than contid's own: the sender is the event's task.
    public var isUserMessage: Bool {
        let v = rawValue
        return v == 1005 || (1100...1199).contains(v) || ((2100...2999).contains(v) && !isContidRange)
    }

    /// contid's private range of user-space types (2900-2999).
    public var isContidRange: Bool { (2900...2999).contains(rawValue) }

    /// contid's own records (SPEC §6: 2900-2908) other than the auxiliary CONTAINER_ID:
    /// the records contidd submits through the kernel as user messages.
    public var isContidOwnRecord: Bool {
        (Self.containerOp.rawValue...Self.containerInfo.rawValue).contains(rawValue) && self != Self.containerID
    }
}

/// The name table, built once. The lookup table lives in raw memory that is
/// never written after init, so it is safe to share (hence @unchecked Sendable)
/// and costs no reference counting on the per-record path.
final class AuditRecordTypeTable: @unchecked Sendable {
    static let shared = AuditRecordTypeTable()
    let names: [UInt16: String]
    let numbers: [String: UInt16]
    struct Entry { var hash: UInt64; var type: UInt16; var offset: Int32; var length: Int32 }
    private let slots: UnsafeMutablePointer<Entry>
    private let nameBytes: UnsafeMutablePointer<UInt8>
    private let mask: Int

    private init() {
        let entries: [(UInt16, String)] = [
        (1000, "GET"),
        (1001, "SET"),
        (1002, "LIST"),
        (1003, "ADD"),
        (1004, "DEL"),
        (1005, "USER"),
        (1006, "LOGIN"),
        (1007, "WATCH_INS"),
        (1008, "WATCH_REM"),
        (1009, "WATCH_LIST"),
        (1010, "SIGNAL_INFO"),
        (1011, "ADD_RULE"),
        (1012, "DEL_RULE"),
        (1013, "LIST_RULES"),
        (1014, "TRIM"),
        (1015, "MAKE_EQUIV"),
        (1016, "TTY_GET"),
        (1017, "TTY_SET"),
        (1018, "SET_FEATURE"),
        (1019, "GET_FEATURE"),
        (1100, "USER_AUTH"),
        (1101, "USER_ACCT"),
        (1102, "USER_MGMT"),
        (1103, "CRED_ACQ"),
        (1104, "CRED_DISP"),
        (1105, "USER_START"),
        (1106, "USER_END"),
        (1107, "USER_AVC"),
        (1108, "USER_CHAUTHTOK"),
        (1109, "USER_ERR"),
        (1110, "CRED_REFR"),
        (1111, "USYS_CONFIG"),
        (1112, "USER_LOGIN"),
        (1113, "USER_LOGOUT"),
        (1114, "ADD_USER"),
        (1115, "DEL_USER"),
        (1116, "ADD_GROUP"),
        (1117, "DEL_GROUP"),
        (1118, "DAC_CHECK"),
        (1119, "CHGRP_ID"),
        (1120, "TEST"),
        (1121, "TRUSTED_APP"),
        (1122, "USER_SELINUX_ERR"),
        (1123, "USER_CMD"),
        (1124, "USER_TTY"),
        (1125, "CHUSER_ID"),
        (1126, "GRP_AUTH"),
        (1127, "SYSTEM_BOOT"),
        (1128, "SYSTEM_SHUTDOWN"),
        (1129, "SYSTEM_RUNLEVEL"),
        (1130, "SERVICE_START"),
        (1131, "SERVICE_STOP"),
        (1132, "GRP_MGMT"),
        (1133, "GRP_CHAUTHTOK"),
        (1134, "MAC_CHECK"),
        (1135, "ACCT_LOCK"),
        (1136, "ACCT_UNLOCK"),
        (1137, "USER_DEVICE"),
        (1138, "SOFTWARE_UPDATE"),
        (1200, "DAEMON_START"),
        (1201, "DAEMON_END"),
        (1202, "DAEMON_ABORT"),
        (1203, "DAEMON_CONFIG"),
        (1204, "DAEMON_RECONFIG"),
        (1205, "DAEMON_ROTATE"),
        (1206, "DAEMON_RESUME"),
        (1207, "DAEMON_ACCEPT"),
        (1208, "DAEMON_CLOSE"),
        (1209, "DAEMON_ERR"),
        (1300, "SYSCALL"),
        (1301, "FS_WATCH"),
        (1302, "PATH"),
        (1303, "IPC"),
        (1304, "SOCKETCALL"),
        (1305, "CONFIG_CHANGE"),
        (1306, "SOCKADDR"),
        (1307, "CWD"),
        (1308, "FS_INODE"),
        (1309, "EXECVE"),
        (1311, "IPC_SET_PERM"),
        (1312, "MQ_OPEN"),
        (1313, "MQ_SENDRECV"),
        (1314, "MQ_NOTIFY"),
        (1315, "MQ_GETSETATTR"),
        (1316, "KERNEL_OTHER"),
        (1317, "FD_PAIR"),
        (1318, "OBJ_PID"),
        (1319, "TTY"),
        (1320, "EOE"),
        (1321, "BPRM_FCAPS"),
        (1322, "CAPSET"),
        (1323, "MMAP"),
        (1324, "NETFILTER_PKT"),
        (1325, "NETFILTER_CFG"),
        (1326, "SECCOMP"),
        (1327, "PROCTITLE"),
        (1328, "FEATURE_CHANGE"),
        (1329, "REPLACE"),
        (1330, "KERN_MODULE"),
        (1331, "FANOTIFY"),
        (1332, "TIME_INJOFFSET"),
        (1333, "TIME_ADJNTPVAL"),
        (1334, "BPF"),
        (1335, "EVENT_LISTENER"),
        (1336, "URINGOP"),
        (1337, "OPENAT2"),
        (1338, "DM_CTRL"),
        (1339, "DM_EVENT"),
        (1400, "AVC"),
        (1401, "SELINUX_ERR"),
        (1402, "AVC_PATH"),
        (1403, "MAC_POLICY_LOAD"),
        (1404, "MAC_STATUS"),
        (1405, "MAC_CONFIG_CHANGE"),
        (1406, "MAC_UNLBL_ALLOW"),
        (1407, "MAC_CIPSOV4_ADD"),
        (1408, "MAC_CIPSOV4_DEL"),
        (1409, "MAC_MAP_ADD"),
        (1410, "MAC_MAP_DEL"),
        (1411, "MAC_IPSEC_ADDSA"),
        (1412, "MAC_IPSEC_DELSA"),
        (1413, "MAC_IPSEC_ADDSPD"),
        (1414, "MAC_IPSEC_DELSPD"),
        (1415, "MAC_IPSEC_EVENT"),
        (1416, "MAC_UNLBL_STCADD"),
        (1417, "MAC_UNLBL_STCDEL"),
        (1418, "MAC_CALIPSO_ADD"),
        (1419, "MAC_CALIPSO_DEL"),
        (1420, "MAC_TASK_CONTEXTS"),
        (1421, "MAC_OBJ_CONTEXTS"),
        (1500, "APPARMOR"),
        (1501, "APPARMOR_AUDIT"),
        (1502, "APPARMOR_ALLOWED"),
        (1503, "APPARMOR_DENIED"),
        (1504, "APPARMOR_HINT"),
        (1505, "APPARMOR_STATUS"),
        (1506, "APPARMOR_ERROR"),
        (1507, "APPARMOR_KILL"),
        (1700, "ANOM_PROMISCUOUS"),
        (1701, "ANOM_ABEND"),
        (1702, "ANOM_LINK"),
        (1703, "ANOM_CREAT"),
        (1800, "INTEGRITY_DATA"),
        (1801, "INTEGRITY_METADATA"),
        (1802, "INTEGRITY_STATUS"),
        (1803, "INTEGRITY_HASH"),
        (1804, "INTEGRITY_PCR"),
        (1805, "INTEGRITY_RULE"),
        (1806, "INTEGRITY_EVM_XATTR"),
        (1807, "INTEGRITY_POLICY_RULE"),
        (2000, "KERNEL"),
        (2100, "ANOM_LOGIN_FAILURES"),
        (2101, "ANOM_LOGIN_TIME"),
        (2102, "ANOM_LOGIN_SESSIONS"),
        (2103, "ANOM_LOGIN_ACCT"),
        (2104, "ANOM_LOGIN_LOCATION"),
        (2105, "ANOM_MAX_DAC"),
        (2106, "ANOM_MAX_MAC"),
        (2107, "ANOM_AMTU_FAIL"),
        (2108, "ANOM_RBAC_FAIL"),
        (2109, "ANOM_RBAC_INTEGRITY_FAIL"),
        (2110, "ANOM_CRYPTO_FAIL"),
        (2111, "ANOM_ACCESS_FS"),
        (2112, "ANOM_EXEC"),
        (2113, "ANOM_MK_EXEC"),
        (2114, "ANOM_ADD_ACCT"),
        (2115, "ANOM_DEL_ACCT"),
        (2116, "ANOM_MOD_ACCT"),
        (2117, "ANOM_ROOT_TRANS"),
        (2118, "ANOM_LOGIN_SERVICE"),
        (2119, "ANOM_LOGIN_ROOT"),
        (2120, "ANOM_ORIGIN_FAILURES"),
        (2121, "ANOM_SESSION"),
        (2200, "RESP_ANOMALY"),
        (2201, "RESP_ALERT"),
        (2202, "RESP_KILL_PROC"),
        (2203, "RESP_TERM_ACCESS"),
        (2204, "RESP_ACCT_REMOTE"),
        (2205, "RESP_ACCT_LOCK_TIMED"),
        (2206, "RESP_ACCT_UNLOCK_TIMED"),
        (2207, "RESP_ACCT_LOCK"),
        (2208, "RESP_TERM_LOCK"),
        (2209, "RESP_SEBOOL"),
        (2210, "RESP_EXEC"),
        (2211, "RESP_SINGLE"),
        (2212, "RESP_HALT"),
        (2213, "RESP_ORIGIN_BLOCK"),
        (2214, "RESP_ORIGIN_BLOCK_TIMED"),
        (2215, "RESP_ORIGIN_UNBLOCK_TIMED"),
        (2300, "USER_ROLE_CHANGE"),
        (2301, "ROLE_ASSIGN"),
        (2302, "ROLE_REMOVE"),
        (2303, "LABEL_OVERRIDE"),
        (2304, "LABEL_LEVEL_CHANGE"),
        (2305, "USER_LABELED_EXPORT"),
        (2306, "USER_UNLABELED_EXPORT"),
        (2307, "DEV_ALLOC"),
        (2308, "DEV_DEALLOC"),
        (2309, "FS_RELABEL"),
        (2310, "USER_MAC_POLICY_LOAD"),
        (2311, "ROLE_MODIFY"),
        (2312, "USER_MAC_CONFIG_CHANGE"),
        (2313, "USER_MAC_STATUS"),
        (2400, "CRYPTO_TEST_USER"),
        (2401, "CRYPTO_PARAM_CHANGE_USER"),
        (2402, "CRYPTO_LOGIN"),
        (2403, "CRYPTO_LOGOUT"),
        (2404, "CRYPTO_KEY_USER"),
        (2405, "CRYPTO_FAILURE_USER"),
        (2406, "CRYPTO_REPLAY_USER"),
        (2407, "CRYPTO_SESSION"),
        (2408, "CRYPTO_IKE_SA"),
        (2409, "CRYPTO_IPSEC_SA"),
        (2500, "VIRT_CONTROL"),
        (2501, "VIRT_RESOURCE"),
        (2502, "VIRT_MACHINE_ID"),
        (2503, "VIRT_INTEGRITY_CHECK"),
        (2504, "VIRT_CREATE"),
        (2505, "VIRT_DESTROY"),
        (2506, "VIRT_MIGRATE_IN"),
        (2507, "VIRT_MIGRATE_OUT"),
        (2900, "CONTAINER_OP"),
        (2901, "CONTAINER_ID"),
        (2902, "SET_CAPCONTID"),
        (2903, "NS_INFO"),
        (2904, "NS_CREATE"),
        (2905, "NS_CHANGE"),
        (2906, "NS_DESTROY"),
        (2907, "CONTAINER_LOST"),
        (2908, "CONTAINER_INFO")
        ]
        var names: [UInt16: String] = [:]
        var numbers: [String: UInt16] = [:]
        for (n, s) in entries { names[n] = s; numbers[s] = n }
        self.names = names
        self.numbers = numbers
        var size = 1
        while size < entries.count * 4 { size <<= 1 }
        slots = .allocate(capacity: size)
        slots.initialize(repeating: Entry(hash: 0, type: 0, offset: 0, length: 0), count: size)
        let total = entries.reduce(0) { $0 + $1.1.utf8.count }
        nameBytes = .allocate(capacity: total)
        var offset = 0
        for (n, s) in entries {
            let bytes = Array(s.utf8)
            for (k, b) in bytes.enumerated() { nameBytes[offset + k] = b }
            let h = bytes.withUnsafeBytes { Self.hash($0) }
            var i = Int(truncatingIfNeeded: h) & (size - 1)
            while slots[i].length != 0 { i = (i + 1) & (size - 1) }
            slots[i] = Entry(hash: h, type: n, offset: Int32(offset), length: Int32(bytes.count))
            offset += bytes.count
        }
        mask = size - 1
    }

    static let hashSeed: UInt64 = 0xcbf2_9ce4_8422_2325
    static let hashPrime: UInt64 = 0x100_0000_01b3

    @inline(__always)
    static func hash(_ b: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = hashSeed
        for x in b { h = (h ^ UInt64(x)) &* hashPrime }
        return h
    }

    /// The number for a type name given as bytes, or nil when auditd has no such name.
    @inline(__always)
    func lookup(_ name: UnsafeRawBufferPointer) -> UInt16? { lookup(name, hash: Self.hash(name)) }

    /// As `lookup(_:)`, with the name's `hash` already computed.
    @inline(__always)
    func lookup(_ name: UnsafeRawBufferPointer, hash h: UInt64) -> UInt16? {
        var i = Int(truncatingIfNeeded: h) & mask
        while true {
            let e = slots[i]
            if e.length == 0 { return nil }
            if e.hash == h, Int(e.length) == name.count, memcmp(nameBytes + Int(e.offset), name.baseAddress!, name.count) == 0 {
                return e.type
            }
            i = (i + 1) & mask
        }
    }
}
